// A small blocking HTTP GET client over libcurl for the HTTP-based queue
// probes: timeouts from the probe deadline, no signals, TLS verification on
// by default, credentials read at run time and never logged, a response body
// size limit, and curl errors mapped to the probe Reason set.
//
// Thread-safety: an HttpClient is used by one thread at a time (it belongs
// to one probe run); different clients are independent.
#pragma once

#include <cstddef>
#include <string>

#include "probes/probe.h"

namespace pacs::queue {

struct HttpSettings {
  std::string username;       // empty = no authentication
  std::string password_file;  // read at every run; trailing newline stripped
  std::string password_env;   // or: name of an environment variable
  std::string ca_file;        // PEM bundle to verify the server; empty = system store
  bool insecure_skip_verify = false;
  std::size_t max_body_bytes = 16u << 20;
};

struct HttpResult {
  bool ok = false;          // a 2xx answer with a body within the limit
  Reason reason = Reason::internal;
  std::string message;      // one line; never contains credentials
  long status = 0;          // HTTP status, 0 when no answer was received
  std::string body;
};

class HttpClient {
 public:
  explicit HttpClient(const HttpSettings& settings);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // GET `url`, bounded by ctx.deadline (connect and total).
  HttpResult get(const std::string& url, const ProbeContext& ctx);

  // Percent-encodes one path segment or query value.
  static std::string escape(const std::string& s);

 private:
  bool load_credentials(HttpResult& fail);
  const HttpSettings& s_;
  void* curl_ = nullptr;
  bool credentials_loaded_ = false;
  std::string password_;
};

}  // namespace pacs::queue
