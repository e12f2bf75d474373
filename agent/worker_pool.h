// A fixed-size pool of threads for blocking work (DCMTK, libcurl, statvfs,
// directory walks), so none of it ever runs on the HTTP io_context.
//
// Every task is either run or, when the pool stops before it started,
// cancelled: its `cancel` callback runs instead (e.g. to answer a waiting
// HTTP request with 503), so no promise made when a task was queued is
// silently dropped.
//
// Thread-safety: post() and stop() may be called from any thread except a
// pool thread (stop() from a task would join itself). stop() cancels tasks
// not yet started, waits for running ones, and joins every thread (no thread
// outlives the pool).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pacs {

class WorkerPool {
 public:
  explicit WorkerPool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~WorkerPool() { stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False once stopping: the task was not queued and neither callback runs.
  bool post(std::function<void()> run, std::function<void()> cancel = {}) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return false;
      tasks_.push_back({std::move(run), std::move(cancel)});
    }
    cv_.notify_one();
    return true;
  }

  size_t queued() const {
    std::lock_guard lock(mu_);
    return tasks_.size();
  }

  void stop() {
    std::lock_guard join_lock(join_mu_);  // one stopper joins; a second waits for it
    std::deque<Task> dropped;
    {
      std::lock_guard lock(mu_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
      dropped.swap(tasks_);
    }
    cv_.notify_all();
    for (auto& t : dropped)
      if (t.cancel) t.cancel();
    for (auto& t : threads_) {
      if (!t.joinable()) continue;
      // A task that ends up stopping its own pool (the last owner released
      // on a pool thread) must not join itself.
      if (t.get_id() == std::this_thread::get_id()) t.detach();
      else t.join();
    }
    threads_.clear();
  }

 private:
  struct Task {
    std::function<void()> run;
    std::function<void()> cancel;
  };

  void loop() {
    for (;;) {
      Task task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;  // stopping and drained
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task.run();
    }
  }

  mutable std::mutex mu_;
  std::mutex join_mu_;
  std::condition_variable cv_;
  std::deque<Task> tasks_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace pacs
