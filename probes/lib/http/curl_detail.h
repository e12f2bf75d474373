// libcurl helpers shared by the HTTP client and the raw stream (internal to
// probes/lib/http; kinds do not include this).
#pragma once

#include <curl/curl.h>

#include <optional>
#include <string>

namespace pacs::http::detail {

bool is_tls_error(CURLcode c);
double seconds(CURL* h, CURLINFO what);           // a *_TIME_T timer in seconds
std::optional<double> leaf_not_after(CURL* h);    // server certificate notAfter (needs CURLOPT_CERTINFO)
std::string ms(double seconds);                   // "12.3 ms"

}  // namespace pacs::http::detail
