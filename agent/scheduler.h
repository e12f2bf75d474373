// Runs every configured probe on its own interval, on a bounded worker pool.
//
// - First run of a probe at a random offset within min(interval, 5s) (so a
//   fleet restarted at once does not probe in lockstep), then every interval.
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
// Thread-safety: apply(), stop() and running() may be called from any
// thread. stop() waits for in-flight runs (bounded by their deadlines) and
// joins every thread it started.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

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

  void apply(const std::vector<ProbeSpec>& specs);
  void stop();
  int running() const { return running_.load(); }
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
  void dispatch(const std::shared_ptr<Job>& job);

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
  std::thread thread_;
};

}  // namespace pacs
