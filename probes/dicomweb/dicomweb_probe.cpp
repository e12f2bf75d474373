// QIDO-RS and WADO-RS checks. Responses are parsed to count and to check
// their shape; nothing from them is ever put in a message, transcript,
// sample or log line (a WADO-RS URL carries a study UID the server gave us,
// so it is shown as {url}/studies/{study}/metadata).
#include <algorithm>
#include <cctype>
#include <ctime>
#include <regex>

#include <nlohmann/json.hpp>

#include "probes/dicomweb/dicomweb.h"
#include "probes/dicomweb/dicomweb_util.h"

namespace pacs::dicomweb {

using detail::add_response;
using detail::fail;

std::string expand_value(const std::string& value) {
  if (value.size() == 5) {
    std::string lower;
    for (char c : value) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "today") {
      std::time_t t = std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      char buf[16];
      std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
      return buf;
    }
  }
  return value;
}

std::string qido_url(const std::string& base, const std::vector<QueryKey>& keys, int limit) {
  std::string url = base + "/studies";
  char sep = '?';
  for (const auto& k : keys) {
    url += sep + http::escape(k.key) + "=" + http::escape(expand_value(k.value));
    sep = '&';
  }
  if (limit > 0) url += sep + std::string("limit=") + std::to_string(limit);
  return url;
}

namespace detail {

void add_response(ProbeResult& r, const http::Response& h, bool timings) {
  if (h.status > 0) r.add("pacs_http_status_code", "HTTP status code of the last answer.", static_cast<double>(h.status));
  if (h.cert_not_after) {
    r.add("pacs_dicomweb_tls_cert_expiry_timestamp_seconds", "notAfter of the server's TLS certificate (Unix time).",
          *h.cert_not_after);
  }
  if (timings && h.ok) {
    r.add("pacs_dicomweb_first_byte_seconds",
          "Time from the start of the check's main request to the first byte of its response.", h.first_byte_seconds);
    r.add("pacs_dicomweb_response_seconds", "Time from the start of the check's main request to its complete response.",
          h.total_seconds);
  }
}

ProbeResult fail(ProbeResult r, Reason reason, std::string message) {
  r.success = false;
  r.reason = reason;
  r.message = std::move(message);
  return r;
}

// A JSON array of objects (a QIDO-RS or metadata answer), or nullopt.
std::optional<nlohmann::json> dataset_array(const http::Response& h, bool allow_no_content) {
  if (allow_no_content && (h.status == 204 || (h.body.empty() && h.status == 200))) return nlohmann::json::array();
  auto j = nlohmann::json::parse(h.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array()) return std::nullopt;
  for (const auto& e : j)
    if (!e.is_object()) return std::nullopt;
  return j;
}

}  // namespace detail

ProbeResult QidoProbe::run(const ProbeContext& ctx) {
  ProbeResult r = ProbeResult::fail(Reason::internal, "");
  http::Client client(t_.http);
  auto h = client.get(qido_url(t_.url, keys_), ctx, {std::string(detail::kAcceptJson)});
  add_response(r, h, true);
  if (!h.ok) return fail(std::move(r), h.reason, h.message);
  auto studies = detail::dataset_array(h, /*allow_no_content=*/true);
  if (!studies) return fail(std::move(r), Reason::protocol_error, "QIDO-RS: the answer is not a JSON array of datasets");
  const auto n = studies->size();
  ctx.note("QIDO-RS", std::to_string(n) + " matching studies");
  r.add("pacs_dicomweb_qido_matches", "Studies the QIDO-RS search of the last run matched.", static_cast<double>(n));
  r.success = true;
  r.reason = Reason::none;
  r.message = std::to_string(n) + " studies";
  return r;
}

ProbeResult WadoProbe::run(const ProbeContext& ctx) {
  ProbeResult r = ProbeResult::fail(Reason::internal, "");
  http::Client client(t_.http);
  std::string study = o_.study_uid;
  if (study.empty()) {
    auto q = client.get(qido_url(t_.url, o_.keys, 1), ctx, {std::string(detail::kAcceptJson)});
    add_response(r, q, false);
    if (!q.ok) return fail(std::move(r), q.reason, "QIDO-RS (picking a study): " + q.message);
    auto studies = detail::dataset_array(q, true);
    if (!studies) return fail(std::move(r), Reason::protocol_error, "QIDO-RS: the answer is not a JSON array of datasets");
    if (studies->empty()) return fail(std::move(r), Reason::no_match, "QIDO-RS found no study to retrieve");
    // StudyInstanceUID (0020,000D): {"vr":"UI","Value":["1.2..."]}
    static const std::regex uid_re("^[0-9]+(\\.[0-9]+)*$");
    const auto& ds = studies->front();
    auto it = ds.find("0020000D");
    if (it == ds.end() || !it->is_object() || !it->contains("Value") || !(*it)["Value"].is_array() ||
        (*it)["Value"].empty() || !(*it)["Value"][0].is_string()) {
      return fail(std::move(r), Reason::protocol_error, "QIDO-RS: the first study has no StudyInstanceUID");
    }
    study = (*it)["Value"][0].get<std::string>();
    if (study.size() > 64 || !std::regex_match(study, uid_re)) {
      return fail(std::move(r), Reason::protocol_error, "QIDO-RS: the first study's StudyInstanceUID is not a valid UID");
    }
    ctx.note("QIDO-RS", "picked one study to retrieve");
  }
  http::Request req;
  req.url = t_.url + "/studies/" + http::escape(study) + "/metadata";
  req.headers = {std::string(detail::kAcceptJson)};
  auto h = client.perform(req, ctx, t_.url + "/studies/{study}/metadata");  // never the UID
  r.samples.erase(std::remove_if(r.samples.begin(), r.samples.end(),
                                 [](const Sample& s) { return s.name == "pacs_http_status_code"; }),
                  r.samples.end());
  add_response(r, h, true);
  if (!h.ok) return fail(std::move(r), h.reason, "WADO-RS: " + h.message);
  auto instances = detail::dataset_array(h, false);
  if (!instances) return fail(std::move(r), Reason::protocol_error, "WADO-RS: the metadata is not a JSON array of datasets");
  r.add("pacs_dicomweb_wado_bytes", "Size of the study metadata the last WADO-RS run retrieved.",
        static_cast<double>(h.body.size()));
  r.add("pacs_dicomweb_wado_instances", "Instances described in the study metadata the last WADO-RS run retrieved.",
        static_cast<double>(instances->size()));
  ctx.note("WADO-RS", std::to_string(instances->size()) + " instances in the metadata, " + std::to_string(h.body.size()) +
                          " bytes");
  if (instances->empty()) return fail(std::move(r), Reason::protocol_error, "WADO-RS: the study metadata lists no instance");
  r.success = true;
  r.reason = Reason::none;
  r.message = std::to_string(instances->size()) + " instances, " + std::to_string(h.body.size()) + " bytes";
  return r;
}

}  // namespace pacs::dicomweb
