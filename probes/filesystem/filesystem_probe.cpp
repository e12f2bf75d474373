#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <system_error>
#include <thread>

#include "probes/filesystem/filesystem.h"
#include "probes/log.h"

namespace pacs::filesystem {

int system_statvfs(const std::string& path, struct statvfs& out) {
  return ::statvfs(path.c_str(), &out) == 0 ? 0 : errno;
}

// One path's state. Shared by the watchdog, the waiters and the helper
// thread, so the helper can finish after everyone else has gone.
struct StatWatchdog::Slot {
  std::mutex mu;
  std::condition_variable cv;
  bool in_flight = false;
  bool abandoned = false;  // a waiter gave up on the in-flight call: the path is stuck
  std::uint64_t started = 0, finished = 0;
  int rc = 0;
  struct statvfs st {};
};

StatWatchdog::StatWatchdog(StatFn fn) : fn_(std::move(fn)) {}

std::shared_ptr<StatWatchdog> StatWatchdog::process_default() {
  static const auto instance = std::make_shared<StatWatchdog>();
  return instance;
}

StatWatchdog::Outcome StatWatchdog::stat(const std::string& path, Clock::time_point deadline) {
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard lk(mu_);
    auto& s = slots_[path];
    if (!s) s = std::make_shared<Slot>();
    slot = s;
  }
  std::unique_lock lk(slot->mu);
  std::uint64_t ticket;
  if (slot->in_flight) {
    // A call that somebody already gave up on: do not queue behind it.
    if (slot->abandoned) return {Outcome::still_stuck, 0, {}};
    ticket = slot->started;  // join the call in progress
  } else {
    ticket = ++slot->started;
    slot->in_flight = true;
    slot->abandoned = false;
    try {
      std::thread([slot, fn = fn_, path] {
        struct statvfs st {};
        int rc = fn(path, st);
        std::lock_guard g(slot->mu);
        slot->rc = rc;
        slot->st = st;
        slot->finished = slot->started;
        slot->in_flight = false;
        slot->cv.notify_all();
      }).detach();
    } catch (const std::system_error&) {
      slot->in_flight = false;
      return {Outcome::error, EAGAIN, {}};
    }
  }
  if (!slot->cv.wait_until(lk, deadline, [&] { return slot->finished >= ticket; })) {
    slot->abandoned = true;
    return {Outcome::timed_out, 0, {}};
  }
  Outcome out;
  out.kind = slot->rc == 0 ? Outcome::ok : Outcome::error;
  out.err = slot->rc;
  out.st = slot->st;
  return out;
}

bool StatWatchdog::stuck(const std::string& path) const {
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard lk(mu_);
    auto it = slots_.find(path);
    if (it == slots_.end()) return false;
    slot = it->second;
  }
  std::lock_guard g(slot->mu);
  return slot->in_flight && slot->abandoned;
}

int StatWatchdog::calls_in_flight() const {
  std::lock_guard lk(mu_);
  int n = 0;
  for (const auto& [p, slot] : slots_) {
    std::lock_guard g(slot->mu);
    n += slot->in_flight ? 1 : 0;
  }
  return n;
}

const std::vector<Reason>& filesystem_reasons() {
  static const std::vector<Reason> r = {Reason::io_error, Reason::io_timeout, Reason::internal};
  return r;
}

FilesystemProbe::FilesystemProbe(FilesystemOptions opts, std::shared_ptr<StatWatchdog> watchdog)
    : opts_(std::move(opts)), watchdog_(std::move(watchdog)) {}

ProbeResult FilesystemProbe::run(const ProbeContext& ctx) {
  const Labels labels = {{"path", opts_.path}};
  auto stuck_gauge = [&](ProbeResult& r, bool stuck) {
    r.add("pacs_filesystem_stuck", "1 while a statvfs call on the path has not returned.", stuck ? 1 : 0, labels);
  };
  auto o = watchdog_->stat(opts_.path, ctx.deadline);
  switch (o.kind) {
    case StatWatchdog::Outcome::timed_out: {
      auto r = ProbeResult::fail(Reason::io_timeout, "statvfs(" + opts_.path + ") did not return before the deadline; "
                                                     "not calling it again until it does");
      stuck_gauge(r, true);
      if (ctx.log) ctx.log->warn("filesystem stuck", {{"path", opts_.path}});
      return r;
    }
    case StatWatchdog::Outcome::still_stuck: {
      auto r = ProbeResult::fail(Reason::io_timeout, "statvfs(" + opts_.path + ") from an earlier run has still not returned");
      stuck_gauge(r, true);
      return r;
    }
    case StatWatchdog::Outcome::error: {
      auto r = ProbeResult::fail(Reason::io_error, "statvfs(" + opts_.path + "): " + std::strerror(o.err));
      stuck_gauge(r, false);
      return r;
    }
    case StatWatchdog::Outcome::ok: break;
  }
  const auto& st = o.st;
  const double frsize = static_cast<double>(st.f_frsize ? st.f_frsize : st.f_bsize);
  auto r = ProbeResult::ok();
  r.add("pacs_filesystem_size_bytes", "Filesystem size in bytes.", static_cast<double>(st.f_blocks) * frsize, labels);
  r.add("pacs_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.",
        static_cast<double>(st.f_bavail) * frsize, labels);
  r.add("pacs_filesystem_free_bytes", "Filesystem free space in bytes, including root-reserved blocks.",
        static_cast<double>(st.f_bfree) * frsize, labels);
  r.add("pacs_filesystem_files", "Filesystem total inodes.", static_cast<double>(st.f_files), labels);
  r.add("pacs_filesystem_files_free", "Filesystem free inodes.", static_cast<double>(st.f_ffree), labels);
  r.add("pacs_filesystem_readonly", "1 if the filesystem is mounted read-only.", (st.f_flag & ST_RDONLY) ? 1 : 0,
        labels);
  stuck_gauge(r, false);
  return r;
}

}  // namespace pacs::filesystem
