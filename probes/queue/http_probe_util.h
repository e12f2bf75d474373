// Helpers shared by the HTTP-based queue probes (orthanc, dcm4chee, http_json).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "probes/lib/http/http_client.h"

namespace pacs::queue::detail {

inline void add_status_code(ProbeResult& r, const http::Response& h) {
  if (h.status > 0) {
    r.add("pacs_http_status_code", "HTTP status code of the last answer.", static_cast<double>(h.status));
  }
}

// The same for a run that makes several requests: the last answer's status
// replaces the earlier one.
inline void set_status_code(ProbeResult& r, const http::Response& h) {
  std::erase_if(r.samples, [](const Sample& s) { return s.name == "pacs_http_status_code"; });
  add_status_code(r, h);
}

// The failure for a request that did not give a usable answer, keeping the
// samples gathered so far.
inline ProbeResult fail_from(ProbeResult partial, const http::Response& h) {
  partial.success = false;
  partial.reason = h.reason;
  partial.message = h.message;
  return partial;
}

// Parses a body as JSON; on failure sets a protocol_error on `r`.
inline std::optional<nlohmann::json> parse_json(const http::Response& h, const std::string& what, ProbeResult& r) {
  auto j = nlohmann::json::parse(h.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    r.success = false;
    r.reason = Reason::protocol_error;
    r.message = what + ": response is not valid JSON";
    return std::nullopt;
  }
  return j;
}

inline ProbeResult protocol_error(ProbeResult partial, std::string message) {
  partial.success = false;
  partial.reason = Reason::protocol_error;
  partial.message = std::move(message);
  return partial;
}

}  // namespace pacs::queue::detail
