#include "agent/scheduler.h"

#include "agent/probe_runner.h"

namespace pacs {

Scheduler::Scheduler(ResultStore& store, Logger& log, int workers, TargetHistory* history)
    : store_(store), history_(history), log_(log), pool_(workers), thread_([this] { loop(); }) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::apply(const std::vector<ProbeSpec>& specs) {
  store_.set_probes(specs);
  if (history_) history_->set_probes(specs);
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Job>> next;
  auto now = Clock::now();
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
      auto spread = std::min<Duration>(spec.interval, std::chrono::seconds(5));
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

void Scheduler::dispatch(const std::shared_ptr<Job>& job) {
  job->busy = true;
  bool posted = pool_.post([this, job] {
    ++running_;
    auto start = Clock::now();
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
          dispatch(job);
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
