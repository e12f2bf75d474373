#include "agent/probe_metrics.h"

namespace pacs::probe_metrics {

namespace pm = prometheus;

namespace {
pm::MetricFamily& by_name(std::vector<pm::MetricFamily>& fams, const std::string& name, const std::string& help,
                          pm::MetricType type) {
  for (auto& f : fams)
    if (f.name == name) return f;
  fams.push_back({name, help, type, {}});
  return fams.back();
}
}  // namespace

pm::MetricFamily& family(std::vector<pm::MetricFamily>& families, const Family& f) {
  return by_name(families, f.name, f.help, f.type);
}

pm::ClientMetric series(const std::string& probe, const std::string& target) {
  pm::ClientMetric m;
  m.label = {{"probe", probe}, {"target", target}};
  return m;
}

pm::ClientMetric series(const ProbeSpec& spec) { return series(spec.probe, spec.target); }

void append_samples(std::vector<pm::MetricFamily>& families, const std::string& probe, const std::string& target,
                    const std::vector<Sample>& samples) {
  for (const auto& s : samples) {
    auto& f = by_name(families, s.name, s.help, s.counter ? pm::MetricType::Counter : pm::MetricType::Gauge);
    auto m = series(probe, target);
    for (const auto& [k, v] : s.labels) m.label.push_back({k, v});
    if (s.counter) m.counter.value = s.value;
    else m.gauge.value = s.value;
    f.metric.push_back(std::move(m));
  }
}

}  // namespace pacs::probe_metrics
