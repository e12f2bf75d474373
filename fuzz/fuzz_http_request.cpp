// The HTTP request path: Beast's parser with the server's limits, the
// request as handlers see it, basic auth (without bcrypt: the verdicts that
// need none), the cross-site and /probe input checks, the routing table.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/agent.h"
#include "agent/http_auth.h"
#include "agent/http_server.h"
#include "agent/probe_coalescer.h"

namespace {
struct World {
  pacs::Logger log{pacs::LogLevel::error, [](std::string_view) {}};
  // A bcrypt hash of "pw" (cost 4); quick() never runs bcrypt.
  pacs::BasicAuth auth{{{"prometheus", "$2b$04$0xAUfMeF5XNFxyUtdOJPzOuqgrnv7yb6Ed9YNdmoi8oKF6X3qmXWu"}}};
  pacs::Agent agent{log, {std::nullopt, {}, false}, pacs::parse_config("", "fuzz.toml")};
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World w;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto req = pacs::parse_http_request(bytes);
  if (!req) return 0;
  (void)w.auth.quick(req->header("authorization"));
  (void)pacs::ProbeCoalescer::key(*req);
  // Routes that answer synchronously from the input alone (no config has
  // targets, so /probe only validates; /-/reload is refused without the flag).
  if (req->path == "/probe" || req->path == "/-/reload" || req->path == "/-/healthy" || req->path == "/nope" ||
      req->method != "GET") {
    w.agent.handle(*req, [](pacs::HttpReply) {});
  }
  return 0;
}
