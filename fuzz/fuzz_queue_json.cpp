// The queue kinds' handling of HTTP answers: Orthanc's /jobs and
// /statistics, and http_json's pointers, on arbitrary bodies. Exported
// values must stay bounded label values and numbers; nothing may throw.
#include <cstddef>
#include <cstdint>
#include <string>

#include "probes/queue/queue.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  pacs::http::Response h;
  h.ok = true;
  h.reason = pacs::Reason::none;
  h.status = 200;
  h.body.assign(reinterpret_cast<const char*>(data), size);
  auto jobs = pacs::queue::orthanc_jobs_answer(pacs::ProbeResult::ok(), h);
  for (const auto& s : jobs.samples)
    for (const auto& [k, v] : s.labels)
      if (v.size() > 64) __builtin_trap();  // unbounded label value from a peer
  (void)pacs::queue::orthanc_statistics_answer(std::move(jobs), h);
  static const std::vector<pacs::queue::JsonValueSpec> values = {
      {"depth", "/depth"}, {"first", "/queues/0/n"}, {"escaped", "/a~1b/c~0d"}};
  (void)pacs::queue::http_json_answer(h, "http://127.0.0.1/q?token=x", values);
  return 0;
}
