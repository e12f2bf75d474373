// Helpers shared by the dicomweb checks (internal to the kind).
#pragma once

#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "probes/lib/http/http_client.h"

namespace pacs::dicomweb::detail {

constexpr std::string_view kAcceptJson = "Accept: application/dicom+json";

// pacs_http_status_code, the certificate expiry and (with `timings`, for a
// check's main request) the first-byte and response times.
void add_response(ProbeResult& r, const http::Response& h, bool timings);
ProbeResult fail(ProbeResult r, Reason reason, std::string message);
// The body as a JSON array of objects; with `allow_no_content`, 204 (and an
// empty 200) is an empty array. nullopt when it is anything else.
std::optional<nlohmann::json> dataset_array(const http::Response& h, bool allow_no_content);

}  // namespace pacs::dicomweb::detail
