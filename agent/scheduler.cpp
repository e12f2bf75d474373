#include "agent/scheduler.h"

#include <algorithm>
#include <limits>

#include "agent/probe_runner.h"

namespace pacs {

namespace pm = prometheus;

const std::vector<double>& Scheduler::lag_buckets() {
  // Fine below 0.1 s (a healthy agent starts runs within milliseconds; the
  // large-archive bench holds the p99 under 0.1 s), coarse above: 1 s is the
  // PacsAgentFallingBehind threshold, 30 s a whole default interval.
  static const std::vector<double> b = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30};
  return b;
}

Scheduler::Scheduler(ResultStore& store, Logger& log, int workers, TargetHistory* history)
    : store_(store),
      history_(history),
      log_(log),
      pool_(workers),
      lag_counts_(lag_buckets().size() + 1, 0),
      thread_([this] { loop(); }) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::apply(const std::vector<ProbeSpec>& specs) {
  store_.set_probes(specs);
  if (history_) history_->set_probes(specs);
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Job>> next;
  auto now = Clock::now();
  // First runs spread over up to 5 s, or 20 ms per probe when there are many.
  Duration spread_all = std::max<Duration>(std::chrono::seconds(5),
                                           std::chrono::milliseconds(20) * static_cast<std::int64_t>(specs.size()));
  for (const auto& spec : specs) {
    std::shared_ptr<Job> keep;
    for (auto& j : jobs_) {
      if (j && same_probe(j->spec, spec)) {
        keep = std::move(j);
        break;
      }
    }
    if (!keep) {
      keep = std::make_shared<Job>();
      keep->spec = spec;
      keep->probe = spec.make();
      auto spread = std::min<Duration>(spec.interval, spread_all);
      std::uniform_int_distribution<std::int64_t> d(0, std::max<std::int64_t>(0, spread.count() - 1));
      keep->next_due = now + Duration(d(rng_));
    }
    // A kept job's spec is never rewritten: a worker may be reading it, and
    // an equal fingerprint means nothing that shapes the probe changed.
    next.push_back(std::move(keep));
  }
  jobs_ = std::move(next);
  cv_.notify_all();
}

void Scheduler::stop() {
  if (stopping_.exchange(true)) {
    if (thread_.joinable()) thread_.join();
    return;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  pool_.stop();  // waits for in-flight runs; they end by their deadline
  std::lock_guard lock(mu_);
  jobs_.clear();
}

void Scheduler::observe_lag(double seconds) {
  seconds = std::max(0.0, seconds);
  const auto& b = lag_buckets();
  auto idx = static_cast<size_t>(std::lower_bound(b.begin(), b.end(), seconds) - b.begin());
  std::lock_guard lock(lag_mu_);
  ++lag_counts_[idx];
  lag_sum_ += seconds;
}

Scheduler::Lag Scheduler::lag() const {
  Lag out;
  std::lock_guard lock(lag_mu_);
  std::uint64_t cum = 0;
  for (size_t i = 0; i < lag_buckets().size(); ++i) {
    cum += lag_counts_[i];
    out.buckets.push_back(cum);
  }
  out.count = cum + lag_counts_.back();
  out.sum = lag_sum_;
  return out;
}

pm::MetricFamily Scheduler::lag_family() const {
  Lag l = lag();
  pm::ClientMetric m;
  for (size_t i = 0; i < l.buckets.size(); ++i) m.histogram.bucket.push_back({l.buckets[i], lag_buckets()[i]});
  m.histogram.bucket.push_back({l.count, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = l.count;
  m.histogram.sample_sum = l.sum;
  return {"pacs_agent_scheduling_lag_seconds",
          "How late scheduled probe runs started on a worker against their due time.",
          pm::MetricType::Histogram,
          {std::move(m)}};
}

void Scheduler::dispatch(const std::shared_ptr<Job>& job, Clock::time_point due) {
  job->busy = true;
  bool posted = pool_.post([this, job, due] {
    auto start = Clock::now();
    observe_lag(std::chrono::duration<double>(start - due).count());
    ++running_;
    auto transcript = history_ ? std::make_shared<Transcript>(start) : nullptr;
    auto outcome = run_probe(*job->probe, job->spec, start + job->spec.timeout, &stopping_, log_, transcript.get());
    store_.record(job->spec, outcome);
    if (history_) history_->record(job->spec, outcome, std::move(transcript));
    --running_;
    job->busy = false;
  }, [job] { job->busy = false; });
  if (!posted) job->busy = false;
}

void Scheduler::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    auto now = Clock::now();
    Clock::time_point wake = now + std::chrono::seconds(60);
    for (auto& job : jobs_) {
      if (job->next_due <= now) {
        if (job->busy) {
          store_.record_skip(job->spec);
          log_.warn("probe run skipped: previous run still going",
                    {{"probe", job->spec.probe}, {"target", job->spec.target}});
        } else {
          dispatch(job, job->next_due);
        }
        job->next_due += job->spec.interval;
        if (job->next_due <= now) job->next_due = now + job->spec.interval;  // fell far behind (suspend)
      }
      wake = std::min(wake, job->next_due);
    }
    cv_.wait_until(lock, wake);
  }
}

}  // namespace pacs
