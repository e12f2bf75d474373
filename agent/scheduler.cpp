#include "agent/scheduler.h"

#include <exception>

namespace pacs {

Scheduler::Scheduler(ResultStore& store, Logger& log, int workers)
    : store_(store), log_(log), pool_(workers), thread_([this] { loop(); }) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::apply(const std::vector<ProbeSpec>& specs) {
  store_.set_probes(specs);
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Job>> next;
  auto now = Clock::now();
  for (const auto& spec : specs) {
    std::shared_ptr<Job> keep;
    for (auto& j : jobs_) {
      if (j && j->spec.probe == spec.probe && j->spec.target == spec.target &&
          j->spec.fingerprint == spec.fingerprint) {
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

ProbeResult Scheduler::run_once(Probe& probe, const ProbeContext& ctx, Logger& log, const ProbeSpec& spec) {
  try {
    return probe.run(ctx);
  } catch (const std::exception& e) {
    log.error("probe threw", {{"probe", spec.probe}, {"target", spec.target}, {"err", e.what()}});
    return ProbeResult::fail(Reason::internal, std::string("internal error: ") + e.what());
  } catch (...) {
    log.error("probe threw", {{"probe", spec.probe}, {"target", spec.target}, {"err", "unknown exception"}});
    return ProbeResult::fail(Reason::internal, "internal error: unknown exception");
  }
}

void Scheduler::dispatch(const std::shared_ptr<Job>& job) {
  job->busy = true;
  bool posted = pool_.post([this, job] {
    ++running_;
    auto start = Clock::now();
    ProbeContext ctx;
    ctx.deadline = start + job->spec.timeout;
    ctx.stop = &stopping_;
    ctx.log = &log_;
    ProbeResult r = run_once(*job->probe, ctx, log_, job->spec);
    auto end = Clock::now();
    double secs = std::chrono::duration<double>(end - start).count();
    if (!r.success && r.reason == Reason::none) r.reason = Reason::internal;  // a probe bug, not a success
    store_.record(job->spec, r, secs, std::chrono::system_clock::now());
    if (end > ctx.deadline + std::chrono::seconds(1)) {
      log_.warn("probe overran its deadline", {{"probe", job->spec.probe}, {"target", job->spec.target},
                                               {"duration_seconds", std::to_string(secs)}});
    }
    if (!r.success) {
      log_.debug("probe failed", {{"probe", job->spec.probe}, {"target", job->spec.target},
                                  {"reason", to_string(r.reason)}, {"msg", r.message}});
    }
    --running_;
    job->busy = false;
  });
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
