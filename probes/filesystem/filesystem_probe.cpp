#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <condition_variable>
#include <cstring>
#include <system_error>
#include <thread>

#include "probes/filesystem/filesystem.h"
#include "probes/log.h"

namespace pacs::filesystem {

namespace {
// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      auto oct = s.substr(i + 1, 3);
      if (oct.find_first_not_of("01234567") == std::string_view::npos) {
        out += static_cast<char>((oct[0] - '0') * 64 + (oct[1] - '0') * 8 + (oct[2] - '0'));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

bool has_option(std::string_view opts, std::string_view want) {
  while (!opts.empty()) {
    auto comma = opts.find(',');
    if (opts.substr(0, comma) == want) return true;
    if (comma == std::string_view::npos) break;
    opts.remove_prefix(comma + 1);
  }
  return false;
}

bool under(const std::string& path, const std::string& mount_point) {
  if (mount_point == "/") return true;
  return path.compare(0, mount_point.size(), mount_point) == 0 &&
         (path.size() == mount_point.size() || path[mount_point.size()] == '/');
}
}  // namespace

std::optional<bool> superblock_readonly(std::string_view mountinfo, dev_t dev, const std::string& path) {
  std::optional<bool> by_dev, by_prefix;
  size_t best_len = 0;
  while (!mountinfo.empty()) {
    auto nl = mountinfo.find('\n');
    std::string_view line = mountinfo.substr(0, nl);
    mountinfo.remove_prefix(nl == std::string_view::npos ? mountinfo.size() : nl + 1);
    // id parent major:minor root mount_point mount_opts [optional...] - fstype source super_opts
    std::vector<std::string_view> f;
    for (size_t pos = 0; pos <= line.size();) {
      auto sp = line.find(' ', pos);
      if (sp == std::string_view::npos) sp = line.size();
      f.push_back(line.substr(pos, sp - pos));
      pos = sp + 1;
    }
    size_t dash = 0;
    for (size_t i = 6; i < f.size(); ++i)
      if (f[i] == "-") {
        dash = i;
        break;
      }
    if (dash == 0 || dash + 3 >= f.size()) continue;  // malformed line
    bool ro = has_option(f[dash + 3], "ro");
    auto colon = f[2].find(':');
    if (colon != std::string_view::npos) {
      unsigned maj = static_cast<unsigned>(std::strtoul(std::string(f[2].substr(0, colon)).c_str(), nullptr, 10));
      unsigned min = static_cast<unsigned>(std::strtoul(std::string(f[2].substr(colon + 1)).c_str(), nullptr, 10));
      if (makedev(maj, min) == dev) by_dev = ro;  // the last (top-most) mount of the device wins
    }
    std::string mp = unescape_octal(f[4]);
    if (under(path, mp) && mp.size() >= best_len) {
      best_len = mp.size();
      by_prefix = ro;
    }
  }
  return by_dev ? by_dev : by_prefix;
}

int system_statvfs(const std::string& path, struct statvfs& out) {
  if (::statvfs(path.c_str(), &out) != 0) return errno;
  struct stat sb {};
  char real[PATH_MAX];
  if (::stat(path.c_str(), &sb) == 0 && ::realpath(path.c_str(), real)) {
    std::ifstream in("/proc/self/mountinfo");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (auto ro = superblock_readonly(text, sb.st_dev, real)) {
      if (*ro) out.f_flag |= ST_RDONLY;
      else out.f_flag &= ~static_cast<unsigned long>(ST_RDONLY);
    }
  }
  return 0;
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
  static const std::vector<Reason> r = {Reason::io_error, Reason::io_timeout};
  return r;
}

FilesystemProbe::FilesystemProbe(FilesystemOptions opts, std::shared_ptr<StatWatchdog> watchdog)
    : opts_(std::move(opts)), watchdog_(std::move(watchdog)) {}

ProbeResult FilesystemProbe::run(const ProbeContext& ctx) {
  const Labels labels = {{"path", opts_.path}};
  auto stuck_gauge = [&](ProbeResult& r, bool stuck) {
    r.add("pacs_filesystem_stuck", "1 while a statvfs call on the path has not returned.", stuck ? 1 : 0, labels);
  };
  const auto stat_start = Clock::now();
  if (ctx.tracing()) {
    ctx.note("statvfs", opts_.path + (watchdog_->stuck(opts_.path) ? " (an earlier call has not returned)" : ""));
  }
  auto o = watchdog_->stat(opts_.path, ctx.deadline);
  if (ctx.tracing()) {
    static const char* const kOutcome[] = {"returned", "failed", "no answer before the deadline", "still stuck"};
    char took[48];
    std::snprintf(took, sizeof took, "after %.3f ms",
                  std::chrono::duration<double, std::milli>(Clock::now() - stat_start).count());
    ctx.note("statvfs " + std::string(kOutcome[o.kind]),
             took + (o.kind == StatWatchdog::Outcome::error ? std::string(": ") + std::strerror(o.err) : ""));
  }
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
  r.add("pacs_filesystem_readonly", "1 if the filesystem (its superblock) is read-only.", (st.f_flag & ST_RDONLY) ? 1 : 0,
        labels);
  stuck_gauge(r, false);
  return r;
}

}  // namespace pacs::filesystem
