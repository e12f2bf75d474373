// A lock that can be waited for until a deadline (Lockable and TimedLockable,
// so std::unique_lock and std::lock_guard work with it).
//
// std::timed_mutex would do, but with GCC 12 its try_lock_until() waits in
// pthread_mutex_clocklock(), which ThreadSanitizer (libtsan of GCC 12) does
// not intercept: TSan then misses the lock and reports the unlock as "unlock
// of an unlocked mutex". This one is a mutex, a condition variable and a flag,
// all of which TSan understands.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace pacs {

class TimedLock {
 public:
  void lock() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [this] { return !held_; });
    held_ = true;
  }
  bool try_lock() {
    std::lock_guard lk(mu_);
    if (held_) return false;
    held_ = true;
    return true;
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    std::unique_lock lk(mu_);
    if (!cv_.wait_until(lk, deadline, [this] { return !held_; })) return false;
    held_ = true;
    return true;
  }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& d) {
    return try_lock_until(std::chrono::steady_clock::now() + d);
  }
  void unlock() {
    {
      std::lock_guard lk(mu_);
      held_ = false;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
};

}  // namespace pacs
