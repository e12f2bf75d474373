#include "agent/result_store.h"

#include <algorithm>
#include <limits>
#include <tuple>

#include "agent/probe_metrics.h"

namespace pacs {

namespace pm = prometheus;
namespace M = probe_metrics;

namespace {
double unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}
}  // namespace

const std::vector<double>& ResultStore::buckets() {
  static const std::vector<double> b = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return b;
}

void ResultStore::set_probes(const std::vector<ProbeSpec>& specs) {
  std::lock_guard lock(mu_);
  std::map<Key, Entry> next;
  std::vector<Key> order;
  for (const auto& spec : specs) {
    Key k{spec.probe, spec.target};
    auto it = entries_.find(k);
    if (it != entries_.end() && same_probe(it->second.spec, spec)) {
      next.emplace(k, std::move(it->second));
    } else {
      Entry e;
      e.spec = spec;
      e.spec.make = nullptr;
      e.status.kind = spec.kind;
      e.status.check = spec.check;
      e.status.probe = spec.probe;
      e.status.target = spec.target;
      for (Reason r : spec.reasons) e.failures_by_reason[r] = 0;
      e.failures_by_reason[Reason::internal] = 0;  // any probe can throw
      e.bucket_counts.assign(buckets().size(), 0);
      next.emplace(k, std::move(e));
    }
    next.at(k).status.interval = spec.interval;
    next.at(k).status.timeout = spec.timeout;
    order.push_back(k);
  }
  entries_ = std::move(next);
  order_ = std::move(order);
}

ResultStore::Entry* ResultStore::find(const ProbeSpec& spec) {
  auto it = entries_.find({spec.probe, spec.target});
  if (it == entries_.end() || !same_probe(it->second.spec, spec)) return nullptr;
  return &it->second;
}

void ResultStore::record(const ProbeSpec& spec, const RunOutcome& outcome) {
  std::lock_guard lock(mu_);
  Entry* e = find(spec);
  if (!e) return;
  const ProbeResult& result = outcome.result;
  RunRecord rec{outcome.end, outcome.seconds, result.success, result.success ? Reason::none : result.reason,
                result.message};
  auto& st = e->status;
  st.has_run = true;
  st.last = rec;
  ++st.runs;
  if (result.success) {
    st.last_success = outcome.end;
  } else {
    ++st.failures;
    ++e->failures_by_reason[rec.reason];
    st.failures_recent.push_front(rec);
    if (st.failures_recent.size() > kRecentFailures) st.failures_recent.pop_back();
  }
  st.recent.push_front(rec);
  if (st.recent.size() > kRecentRuns) st.recent.pop_back();
  const auto& b = buckets();
  auto idx = static_cast<size_t>(std::lower_bound(b.begin(), b.end(), outcome.seconds) - b.begin());
  if (idx < e->bucket_counts.size()) ++e->bucket_counts[idx];  // beyond the last bucket: only +Inf
  e->duration_sum += outcome.seconds;
  e->samples = result.samples;
}

void ResultStore::record_skip(const ProbeSpec& spec) {
  std::lock_guard lock(mu_);
  if (Entry* e = find(spec)) ++e->status.skipped;
}

std::vector<ProbeStatus> ResultStore::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<ProbeStatus> out;
  out.reserve(order_.size());
  for (const auto& k : order_) out.push_back(entries_.at(k).status);
  return out;
}

std::vector<pm::MetricFamily> ResultStore::Collect() const {
  std::vector<pm::MetricFamily> fams;
  // The references below point into `fams`: reserve so the fixed families
  // never reallocate (append_samples adds more only after them).
  fams.reserve(32);
  auto& success = M::family(fams, M::kSuccess);
  auto& duration = M::family(fams, M::kDuration);
  auto& hist = M::family(fams, M::kRunDuration);
  auto& last_run = M::family(fams, M::kLastRun);
  auto& last_ok = M::family(fams, M::kLastSuccess);
  auto& runs = M::family(fams, M::kRuns);
  auto& fails = M::family(fams, M::kFailures);
  auto& skipped = M::family(fams, M::kSkipped);
  auto& interval = M::family(fams, M::kInterval);
  auto& timeout = M::family(fams, M::kTimeout);
  std::vector<std::tuple<std::string, std::string, std::vector<Sample>>> samples;

  {
    std::lock_guard lock(mu_);
    for (const auto& k : order_) {
      const Entry& e = entries_.at(k);
      const auto& st = e.status;
      auto add = [&](pm::MetricFamily& f, double v) {
        auto m = M::series(st.probe, st.target);
        if (f.type == pm::MetricType::Counter) m.counter.value = v;
        else m.gauge.value = v;
        f.metric.push_back(std::move(m));
      };
      add(interval, std::chrono::duration<double>(st.interval).count());
      add(timeout, std::chrono::duration<double>(st.timeout).count());
      add(runs, static_cast<double>(st.runs));
      add(skipped, static_cast<double>(st.skipped));
      for (const auto& [reason, n] : e.failures_by_reason) {
        auto m = M::series(st.probe, st.target);
        m.label.push_back({"reason", std::string(to_string(reason))});
        m.counter.value = static_cast<double>(n);
        fails.metric.push_back(std::move(m));
      }
      {
        auto m = M::series(st.probe, st.target);
        std::uint64_t cum = 0;
        for (size_t i = 0; i < buckets().size(); ++i) {
          cum += e.bucket_counts[i];
          m.histogram.bucket.push_back({cum, buckets()[i]});
        }
        m.histogram.bucket.push_back({st.runs, std::numeric_limits<double>::infinity()});
        m.histogram.sample_count = st.runs;
        m.histogram.sample_sum = e.duration_sum;
        hist.metric.push_back(std::move(m));
      }
      if (!st.has_run) continue;  // no result yet: no success/duration series
      add(success, st.last.success ? 1 : 0);
      add(duration, st.last.duration_seconds);
      add(last_run, unix_seconds(st.last.end));
      if (st.last_success.time_since_epoch().count() != 0) add(last_ok, unix_seconds(st.last_success));
      if (!e.samples.empty()) samples.emplace_back(st.probe, st.target, e.samples);
    }
  }
  for (const auto& [p, t, s] : samples) M::append_samples(fams, p, t, s);
  // Families with no series would print only HELP/TYPE; drop them.
  fams.erase(std::remove_if(fams.begin(), fams.end(), [](const pm::MetricFamily& f) { return f.metric.empty(); }),
             fams.end());
  return fams;
}

}  // namespace pacs
