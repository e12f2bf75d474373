// Runs every configured probe on its own interval, on a bounded worker pool.
//
// - First run of a probe at a random offset within
//   min(interval, max(5 s, 20 ms x number of probes)), then every interval:
//   a fleet restarted at once does not probe in lockstep, a small agent has
//   its first results within 5 s, and a large one (1,000 AEs) starts at most
//   about 50 runs a second instead of all of them in the first seconds of
//   every interval.
// - A run still going (or still queued) when the next one is due is skipped
//   and counted, never stacked.
// - Each run gets deadline = start + timeout and goes through run_probe()
//   (agent/probe_runner.h), the same path /probe takes.
// - Every run is traced; with a TargetHistory, its result, samples and
//   transcript go there too (the last failure's transcript is kept).
// - apply() swaps the probe set: unchanged probes (same_probe()) keep their
//   schedule phase; removed ones stop being scheduled and their in-flight
//   result is dropped.
//
// - How late each run starts on a worker against its due time (waiting for
//   the scheduler thread to wake and for a free worker) is observed in
//   pacs_agent_scheduling_lag_seconds. It stays near zero while the agent
//   keeps up; it grows when every worker is busy (e.g. many targets hanging
//   until their deadline) or the machine is starved of CPU.
//
// Thread-safety: apply(), stop(), running() and lag*() may be called from any
// thread. stop() waits for in-flight runs (bounded by their deadlines) and
// joins every thread it started.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <cstdint>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <prometheus/metric_family.h>

#include "agent/result_store.h"
#include "agent/target_history.h"
#include "agent/worker_pool.h"
#include "probes/log.h"
#include "probes/probe.h"

namespace pacs {

class Scheduler {
 public:
  Scheduler(ResultStore& store, Logger& log, int workers, TargetHistory* history = nullptr);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Upper bounds of pacs_agent_scheduling_lag_seconds.
  static const std::vector<double>& lag_buckets();

  void apply(const std::vector<ProbeSpec>& specs);
  void stop();
  int running() const { return running_.load(); }

  struct Lag {
    std::vector<std::uint64_t> buckets;  // per bound of lag_buckets(), cumulative
    std::uint64_t count = 0;
    double sum = 0;
  };
  Lag lag() const;
  // pacs_agent_scheduling_lag_seconds as a histogram family.
  prometheus::MetricFamily lag_family() const;
  const std::atomic<bool>& stop_flag() const { return stopping_; }

 private:
  struct Job {
    ProbeSpec spec;
    std::unique_ptr<Probe> probe;
    Clock::time_point next_due;
    // Shared with the worker task so a job removed by apply() while running
    // stays alive until its run ends.
    std::atomic<bool> busy{false};
  };
  void loop();
  void dispatch(const std::shared_ptr<Job>& job, Clock::time_point due);
  void observe_lag(double seconds);

  ResultStore& store_;
  TargetHistory* history_;
  Logger& log_;
  WorkerPool pool_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Job>> jobs_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> running_{0};
  std::mt19937_64 rng_{std::random_device{}()};
  mutable std::mutex lag_mu_;
  std::vector<std::uint64_t> lag_counts_;  // per bucket (not cumulative), +Inf last
  double lag_sum_ = 0;
  std::thread thread_;
};

}  // namespace pacs
