// Recent scheduled runs of every probe, for the status page and the page of
// each target (`/target?name=NAME`): the last kRuns results, the samples of
// the last run (the figures beside a status), and the transcripts of the
// last run and of the last failure.
//
// History is kept per probe, each in its own bounded ring, so a target that
// fails every few seconds cannot push another target's history out, and the
// transcript of a target's last failure stays until that target fails again,
// however many runs succeed or fail elsewhere.
//
// The scheduler traces every run (a transcript costs microseconds against a
// probe's milliseconds: bench/transcript_bench.cpp), so the failure that did
// not happen again by the time someone looks still has its transcript.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/probe_runner.h"
#include "agent/probe_table.h"
#include "probes/probe.h"

namespace pacs {

struct HistoryRun {
  std::chrono::system_clock::time_point end;
  double seconds = 0;
  bool success = false;
  Reason reason = Reason::none;
  std::string message;
};

// One run with its transcript.
struct TracedRun {
  HistoryRun run;
  std::shared_ptr<const Transcript> transcript;
};

struct ProbeHistory : ProbeIdentity {
  std::deque<HistoryRun> runs;  // newest first, at most TargetHistory::kRuns
  std::vector<Sample> samples;  // of the last run
  std::optional<TracedRun> last_run, last_failure;
};

class TargetHistory {
 public:
  static constexpr size_t kRuns = 30;  // per probe

  // Tracks exactly these probes, with the rule ResultStore uses: probes
  // whose (probe, target, fingerprint) is unchanged keep their history.
  void set_probes(const std::vector<ProbeSpec>& specs);
  // Ignored when the probe is no longer tracked with that fingerprint.
  void record(const ProbeSpec& spec, const RunOutcome& outcome, std::shared_ptr<const Transcript> transcript);

  // Every probe of `target`, in config order; empty when no probe has that target.
  std::vector<ProbeHistory> target(std::string_view target) const;
  // The samples of every probe's last run, by (probe, target).
  std::map<std::pair<std::string, std::string>, std::vector<Sample>> last_samples() const;

 private:
  struct Entry {
    ProbeSpec spec;  // identity only; `make` is dropped
    ProbeHistory h;
  };
  using Key = std::pair<std::string, std::string>;  // probe, target
  mutable std::mutex mu_;
  std::map<Key, Entry> entries_;
  std::vector<Key> order_;
};

}  // namespace pacs
