// The framework's per-probe series: their names and HELP texts, written
// once, shared by /metrics (ResultStore) and /probe (ProbeEndpoint).
#pragma once

#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "probes/probe.h"

namespace pacs::probe_metrics {

struct Family {
  const char* name;
  const char* help;
  prometheus::MetricType type;
};

inline constexpr Family kSuccess{"pacs_probe_success", "1 if the last run of the check succeeded, 0 otherwise.",
                                 prometheus::MetricType::Gauge};
inline constexpr Family kDuration{"pacs_probe_duration_seconds", "Wall time of the last run of the check.",
                                  prometheus::MetricType::Gauge};
inline constexpr Family kRunDuration{"pacs_probe_run_duration_seconds", "Wall time of every run of the check.",
                                     prometheus::MetricType::Histogram};
inline constexpr Family kLastRun{"pacs_probe_last_run_timestamp_seconds", "Unix time the last run of the check ended.",
                                 prometheus::MetricType::Gauge};
inline constexpr Family kLastSuccess{"pacs_probe_last_success_timestamp_seconds",
                                     "Unix time the last successful run of the check ended.",
                                     prometheus::MetricType::Gauge};
inline constexpr Family kRuns{"pacs_probe_runs_total", "Runs of the check that finished.",
                              prometheus::MetricType::Counter};
inline constexpr Family kFailures{"pacs_probe_failures_total", "Failed runs of the check, by failure reason.",
                                  prometheus::MetricType::Counter};
inline constexpr Family kSkipped{"pacs_probe_skipped_runs_total",
                                 "Runs not started because the previous run of the check was still going.",
                                 prometheus::MetricType::Counter};
inline constexpr Family kInterval{"pacs_probe_interval_seconds", "Configured interval between runs of the check.",
                                  prometheus::MetricType::Gauge};
inline constexpr Family kTimeout{"pacs_probe_timeout_seconds", "Configured deadline of one run of the check.",
                                 prometheus::MetricType::Gauge};
inline constexpr Family kResultInfo{"pacs_probe_result_info",
                                    "Outcome of the check: reason=\"none\" on success; always 1.",
                                    prometheus::MetricType::Gauge};

// The family named by `f` in `families`, appended (empty) when missing.
prometheus::MetricFamily& family(std::vector<prometheus::MetricFamily>& families, const Family& f);

// A series labelled {probe, target}.
prometheus::ClientMetric series(const ProbeSpec& spec);
prometheus::ClientMetric series(const std::string& probe, const std::string& target);

// Appends a probe's own samples (labelled probe/target + their own labels),
// grouping them by metric name.
void append_samples(std::vector<prometheus::MetricFamily>& families, const std::string& probe,
                    const std::string& target, const std::vector<Sample>& samples);

}  // namespace pacs::probe_metrics
