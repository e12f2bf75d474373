#include "agent/target_history.h"

#include "agent/probe_table.h"

namespace pacs {

void TargetHistory::set_probes(const std::vector<ProbeSpec>& specs) {
  std::lock_guard lock(mu_);
  carry_over(entries_, order_, specs, [](const ProbeSpec& spec) {
    Entry e;
    e.h.identify(spec);
    return e;
  });
}

void TargetHistory::record(const ProbeSpec& spec, const RunOutcome& outcome,
                           std::shared_ptr<const Transcript> transcript) {
  const ProbeResult& r = outcome.result;
  HistoryRun run{outcome.end, outcome.seconds, r.success, r.success ? Reason::none : r.reason, r.message};
  std::lock_guard lock(mu_);
  auto it = entries_.find({spec.probe, spec.target});
  if (it == entries_.end() || !same_probe(it->second.spec, spec)) return;
  ProbeHistory& h = it->second.h;
  h.runs.push_front(run);
  if (h.runs.size() > kRuns) h.runs.pop_back();
  h.samples = r.samples;
  if (transcript) {
    h.last_run = TracedRun{run, transcript};
    if (!r.success) h.last_failure = TracedRun{std::move(run), std::move(transcript)};
  } else if (!r.success) {
    h.last_failure = TracedRun{std::move(run), nullptr};
  }
}

std::vector<ProbeHistory> TargetHistory::target(std::string_view target) const {
  std::lock_guard lock(mu_);
  std::vector<ProbeHistory> out;
  for (const auto& k : order_)
    if (k.second == target) out.push_back(entries_.at(k).h);
  return out;
}

std::map<std::pair<std::string, std::string>, std::vector<Sample>> TargetHistory::last_samples() const {
  std::lock_guard lock(mu_);
  std::map<Key, std::vector<Sample>> out;
  for (const auto& [k, e] : entries_) out.emplace(k, e.h.samples);
  return out;
}

}  // namespace pacs
