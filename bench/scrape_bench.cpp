// Cost of one /metrics scrape as the number of probes grows: Collect +
// text serialisation + gzip, with every probe holding a realistic result
// (10 own gauges, 14 reason counters, a 13-bucket histogram). Prints
// figures; asserts nothing.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <vector>

#include <prometheus/text_serializer.h>

#include "agent/http_server.h"
#include "agent/result_store.h"

using namespace pacs;

namespace {
long rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}
double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}
}  // namespace

int main() {
  std::printf("%-8s %-10s %-12s %-12s %-12s %-12s %-12s\n", "probes", "series", "bytes", "gzip_bytes",
              "p50_ms", "p99_ms", "maxrss_MiB");
  for (int n : {10, 100, 1000, 5000}) {
    ResultStore store;
    std::vector<ProbeSpec> specs;
    for (int i = 0; i < n; ++i) {
      ProbeSpec s;
      s.probe = i % 2 ? "dicom_echo" : "filesystem";
      s.target = "target-" + std::to_string(i);
      s.interval = std::chrono::seconds(15);
      s.timeout = std::chrono::seconds(5);
      s.reasons = all_failure_reasons();
      s.fingerprint = "x";
      specs.push_back(s);
    }
    store.set_probes(specs);
    for (const auto& s : specs) {
      ProbeResult r = ProbeResult::ok();
      for (int k = 0; k < 10; ++k) r.add("pacs_bench_gauge_" + std::to_string(k), "A gauge.", k * 1.5, {{"phase", "x"}});
      store.record(s, {r, 0.0012, std::chrono::system_clock::now()});
    }
    std::vector<double> ms;
    size_t bytes = 0, gz = 0, series = 0;
    int reps = n >= 5000 ? 20 : 100;
    for (int rep = 0; rep < reps; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      auto fams = store.Collect();
      std::ostringstream os;
      prometheus::TextSerializer().Serialize(os, fams);
      std::string text = os.str();
      std::string z = gzip_compress(text);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      bytes = text.size();
      gz = z.size();
      series = static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
    }
    std::printf("%-8d %-10zu %-12zu %-12zu %-12.2f %-12.2f %-12.1f\n", n, series, bytes, gz, pct(ms, 0.5),
                pct(ms, 0.99), static_cast<double>(rss_kib()) / 1024.0);
  }
  return 0;
}
