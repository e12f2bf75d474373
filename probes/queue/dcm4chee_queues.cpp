// type = "dcm4chee": task counts of dcm4chee-arc-light queues through its
// REST API: GET {url}/queue/{queueName}/count?status={status} answers
// {"count": N} (QUEUE-RS / MONITOR-RS "Count Tasks in Queue", see README).
#include <algorithm>
#include <cctype>

#include "probes/queue/http_probe_util.h"
#include "probes/queue/queue.h"

namespace pacs::queue {

const std::vector<std::string>& Dcm4cheeQueuesProbe::statuses() {
  static const std::vector<std::string> s = {"SCHEDULED", "IN PROCESS", "WARNING", "FAILED", "COMPLETED", "CANCELED"};
  return s;
}

namespace {
// "IN PROCESS" -> "in_process"
std::string state_label(const std::string& s) {
  std::string out;
  for (char c : s) out += c == ' ' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

ProbeResult Dcm4cheeQueuesProbe::run(const ProbeContext& ctx) {
  http::Client http(http_);
  ProbeResult r = ProbeResult::ok();
  http::Response last;
  for (const auto& q : queues_) {
    for (const auto& status : statuses()) {
      std::string path = "/queue/" + http::escape(q) + "/count?status=" + http::escape(status);
      last = http.get(url_ + path, ctx);
      if (!last.ok) {
        detail::add_status_code(r, last);
        if (last.status == 404) last.message += " (is queue \"" + q + "\" configured in the archive?)";
        return detail::fail_from(std::move(r), last);
      }
      auto j = detail::parse_json(last, "GET " + path, r);
      if (!j) {
        detail::add_status_code(r, last);
        return r;
      }
      if (!j->is_object() || !j->contains("count") || !(*j)["count"].is_number()) {
        detail::add_status_code(r, last);
        return detail::protocol_error(std::move(r), "GET " + path + ": expected {\"count\": <number>}");
      }
      r.add("pacs_queue_items", "Items in the queue by state.", (*j)["count"].get<double>(),
            {{"queue", q}, {"state", state_label(status)}});
    }
  }
  detail::add_status_code(r, last);
  return r;
}

}  // namespace pacs::queue
