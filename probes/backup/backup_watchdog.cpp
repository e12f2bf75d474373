#include <system_error>
#include <thread>

#include "probes/backup/backup.h"

namespace pacs::backup {

// One path's state, shared by the watchdog, the waiters and the helper
// thread, so the helper can finish after everyone else has gone.
struct ScanWatchdog::Slot {
  std::mutex mu;
  std::condition_variable cv;
  bool in_flight = false;
  std::string pattern;  // of the scan in flight
  // Set when a waiter gave up on the scan in flight: the path is stuck (and
  // the helper may stop early). One flag per scan.
  std::shared_ptr<std::atomic<bool>> abandoned = std::make_shared<std::atomic<bool>>(false);
  std::uint64_t started = 0, finished = 0;
  BackupScan result;
};

ScanWatchdog::ScanWatchdog(ScanFn fn) : fn_(std::move(fn)) {}

std::shared_ptr<ScanWatchdog> ScanWatchdog::process_default() {
  static const auto instance = std::make_shared<ScanWatchdog>();
  return instance;
}

ScanWatchdog::Outcome ScanWatchdog::scan(const BackupOptions& opts, Clock::time_point deadline) {
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard lk(mu_);
    auto& s = slots_[opts.path];
    if (!s) s = std::make_shared<Slot>();
    slot = s;
  }
  std::unique_lock lk(slot->mu);
  std::uint64_t ticket = 0;
  for (;;) {
    if (!slot->in_flight) {
      ticket = ++slot->started;
      slot->in_flight = true;
      slot->pattern = opts.pattern;
      slot->abandoned = std::make_shared<std::atomic<bool>>(false);
      try {
        std::thread([slot, fn = fn_, opts, cancel = slot->abandoned] {
          BackupScan result = fn(opts, *cancel);
          std::lock_guard g(slot->mu);
          slot->result = std::move(result);
          slot->finished = slot->started;
          slot->in_flight = false;
          slot->cv.notify_all();
        }).detach();
      } catch (const std::system_error&) {
        slot->in_flight = false;
        return {Outcome::no_thread, {}};
      }
      break;
    }
    // A scan somebody already gave up on: the path is stuck; do not queue.
    if (slot->abandoned->load()) return {Outcome::still_stuck, {}};
    if (slot->pattern == opts.pattern) {
      ticket = slot->started;  // the same scan is running: join it
      break;
    }
    // Another target's scan of this path: wait for it, then scan ourselves.
    if (!slot->cv.wait_until(lk, deadline, [&] { return !slot->in_flight; })) {
      slot->abandoned->store(true);
      return {Outcome::timed_out, {}};
    }
  }
  if (!slot->cv.wait_until(lk, deadline, [&] { return slot->finished >= ticket; })) {
    slot->abandoned->store(true);
    return {Outcome::timed_out, {}};
  }
  // Joined a scan another waiter gave up on, and it stopped early.
  if (slot->result.cancelled) return {Outcome::still_stuck, {}};
  return {Outcome::ok, slot->result};
}

bool ScanWatchdog::stuck(const std::string& path) const {
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard lk(mu_);
    auto it = slots_.find(path);
    if (it == slots_.end()) return false;
    slot = it->second;
  }
  std::lock_guard g(slot->mu);
  return slot->in_flight && slot->abandoned->load();
}

int ScanWatchdog::scans_in_flight() const {
  std::lock_guard lk(mu_);
  int n = 0;
  for (const auto& [p, slot] : slots_) {
    std::lock_guard g(slot->mu);
    n += slot->in_flight ? 1 : 0;
  }
  return n;
}

}  // namespace pacs::backup
