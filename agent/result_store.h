// The latest result of every scheduled probe, its counters, latency
// histogram and recent history, exposed as a prometheus::Collectable.
//
// Thread-safety: all methods may be called concurrently. A scrape (Collect)
// holds the lock only while copying numbers: it never waits for a probe.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "agent/probe_runner.h"
#include "probes/probe.h"

namespace pacs {

struct RunRecord {
  std::chrono::system_clock::time_point end;
  double duration_seconds = 0;
  bool success = false;
  Reason reason = Reason::none;
  std::string message;
};

// What the status page shows for one probe.
struct ProbeStatus {
  std::string kind, check, probe, target;
  Duration interval{}, timeout{};
  bool has_run = false;
  RunRecord last;
  std::chrono::system_clock::time_point last_success{};
  std::uint64_t runs = 0, failures = 0, skipped = 0;
  std::deque<RunRecord> recent;    // newest first
  std::deque<RunRecord> failures_recent;  // newest first; kept longer than `recent`
};

class ResultStore : public prometheus::Collectable {
 public:
  static constexpr size_t kRecentRuns = 10;
  static constexpr size_t kRecentFailures = 20;
  static const std::vector<double>& buckets();

  // Makes the store track exactly these probes: new ones start with zeroed
  // counters, ones whose (probe, target, fingerprint) is unchanged keep
  // their state, others vanish from Collect() at once.
  void set_probes(const std::vector<ProbeSpec>& specs);

  // Records a finished run. Ignored when the probe is no longer tracked with
  // that fingerprint (a run that was in flight across a reload).
  void record(const ProbeSpec& spec, const RunOutcome& outcome);
  void record_skip(const ProbeSpec& spec);

  std::vector<ProbeStatus> snapshot() const;
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  struct Entry {
    ProbeStatus status;
    ProbeSpec spec;  // identity (same_probe) and reasons; `make` is not used
    std::map<Reason, std::uint64_t> failures_by_reason;
    std::vector<std::uint64_t> bucket_counts;  // per bucket (not cumulative)
    double duration_sum = 0;
    std::vector<Sample> samples;
  };
  using Key = std::pair<std::string, std::string>;  // probe, target
  Entry* find(const ProbeSpec& spec);  // null unless same_probe() as the tracked one

  mutable std::mutex mu_;
  std::map<Key, Entry> entries_;
  std::vector<Key> order_;  // config order, for stable output
};

}  // namespace pacs
