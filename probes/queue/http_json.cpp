// type = "http_json": any JSON endpoint; each configured JSON pointer
// becomes pacs_queue_json_value{name}. Numbers only.
#include "probes/queue/http_probe_util.h"
#include "probes/queue/queue.h"

namespace pacs::queue {

ProbeResult HttpJsonProbe::run(const ProbeContext& ctx) {
  http::Client http(http_);
  return http_json_answer(http.get(url_, ctx), url_, values_);
}

ProbeResult http_json_answer(const http::Response& h, const std::string& url, const std::vector<JsonValueSpec>& specs) {
  ProbeResult r = ProbeResult::ok();
  detail::add_status_code(r, h);
  if (!h.ok) return detail::fail_from(std::move(r), h);
  auto j = detail::parse_json(h, "GET " + http::redact_url(url), r);
  if (!j) return r;
  std::vector<Sample> values;
  for (const auto& v : specs) {
    nlohmann::json::json_pointer ptr(v.pointer);  // validated at config time
    if (!j->contains(ptr)) {
      return detail::protocol_error(std::move(r), "value \"" + v.name + "\": pointer " + v.pointer + " not found");
    }
    const auto& x = (*j)[ptr];
    if (!x.is_number()) {
      return detail::protocol_error(std::move(r), "value \"" + v.name + "\": pointer " + v.pointer + " is a " +
                                                      x.type_name() + ", not a number");
    }
    values.push_back({"pacs_queue_json_value", "Value at the configured JSON pointer.", {{"name", v.name}},
                      x.get<double>()});
  }
  // All or nothing: a half-set of values would look like a valid reading.
  for (auto& s : values) r.samples.push_back(std::move(s));
  return r;
}

const std::vector<Reason>& http_reasons() {
  static const std::vector<Reason> r = {Reason::dns_failure,      Reason::connection_refused, Reason::connect_timeout,
                                        Reason::connection_reset, Reason::tls_failure,        Reason::protocol_error,
                                        Reason::response_timeout, Reason::http_status,        Reason::io_error};
  return r;
}

}  // namespace pacs::queue
