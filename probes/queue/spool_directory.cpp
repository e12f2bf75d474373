// type = "directory": counts the files waiting in a spool folder.
//
// Speed matters (a stuck router can leave 100,000 files behind): one
// opendir/readdir pass per folder, d_type to avoid stat calls for folders
// and for names the pattern rejects, and one fstatat per counted file
// (relative to the open folder, so no path building). The fstatat calls
// dominate (readdir of 100k names: ~30 ms, their stats: ~150 ms here), so a
// big folder's names are stat-ed in batches split over two threads.
//
// PHI: spool folders and files are often named after patients and studies
// (routers, `storescp --sort-on-patientname`). An entry that cannot be read
// is counted and its errno kept; its name is never kept, so it can reach no
// message, log line or page.
//
// A dead mount: a single readdir/openat/fstatat on a hung NFS or FUSE mount
// blocks in the kernel and ignores the deadline checks between calls. The
// scan therefore runs on a helper thread of its own; the probe waits for it
// until the deadline (plus a short grace for a scan winding down) and then
// reports io_timeout. A helper that never returns is left behind and the
// path is marked stuck: later runs fail at once (no second helper piles up
// behind the first) until it returns. So a dead mount costs one thread,
// never a worker, a /probe slot or the shutdown.
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "probes/log.h"
#include "probes/queue/queue.h"

namespace pacs::queue {

namespace {

class Scanner {
 public:
  Scanner(const SpoolOptions& o, const ProbeContext& ctx, SpoolScan& out) : o_(o), ctx_(ctx), out_(out) {}

  // Scans the open folder `fd` (takes ownership); `top` for the spool itself.
  void scan(int fd, bool top, int depth) {
    DIR* d = ::fdopendir(fd);
    if (!d) {
      note_error(errno, top);
      ::close(fd);
      return;
    }
    std::vector<std::string> batch;  // regular files of this folder, not yet stat-ed
    while (!out_.partial) {
      if ((++visited_ & 63) == 0 && (ctx_.expired() || ctx_.stopping())) {
        out_.partial = true;
        break;
      }
      errno = 0;
      struct dirent* e = ::readdir(d);
      if (!e) {
        if (errno) note_error(errno, top);
        break;
      }
      const char* name = e->d_name;
      if (name[0] == '.') {
        if (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')) continue;
        if (!o_.include_hidden) continue;
      }
      unsigned char type = e->d_type;
      if (type == DT_DIR) {
        descend(d, name, depth);
        continue;
      }
      if (type != DT_REG && type != DT_UNKNOWN) continue;  // symlinks, fifos, sockets...
      if (!o_.pattern.empty() && ::fnmatch(o_.pattern.c_str(), name, 0) != 0) {
        if (type == DT_REG) continue;  // DT_UNKNOWN may still be a folder
      }
      if (type == DT_REG) {
        batch.emplace_back(name);
        if (batch.size() >= kBatch) flush(::dirfd(d), batch);
        continue;
      }
      struct stat st;
      if (::fstatat(::dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) note_error(errno, false);  // ENOENT: consumed meanwhile
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        descend(d, name, depth);
        continue;
      }
      if (!S_ISREG(st.st_mode)) continue;
      if (!o_.pattern.empty() && ::fnmatch(o_.pattern.c_str(), name, 0) != 0) continue;
      count(out_, st);
    }
    flush(::dirfd(d), batch);
    ::closedir(d);
  }

 private:
  static constexpr size_t kBatch = 16384;     // names held before stat-ing them
  static constexpr size_t kParallelMin = 4096;  // below this one thread is as fast

  static void count(SpoolScan& out, const struct stat& st) {
    ++out.items;
    out.bytes += static_cast<std::uint64_t>(st.st_size);
    std::int64_t mt = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
    if (!out.has_oldest || mt < out.oldest_mtime_ns) {
      out.has_oldest = true;
      out.oldest_mtime_ns = mt;
    }
  }

  // Stats names[begin, end) (regular files per d_type) into `out`.
  void stat_range(int dfd, const std::vector<std::string>& names, size_t begin, size_t end, SpoolScan& out) const {
    for (size_t i = begin; i < end; ++i) {
      if (((i - begin) & 63) == 63 && (ctx_.expired() || ctx_.stopping())) {
        out.partial = true;
        return;
      }
      struct stat st;
      if (::fstatat(dfd, names[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) {  // ENOENT: consumed meanwhile
          if (out.err == 0) out.err = errno;
          ++out.unreadable;
        }
        continue;
      }
      if (S_ISREG(st.st_mode)) count(out, st);  // it may have been replaced meanwhile
    }
  }

  void merge(const SpoolScan& part) {
    out_.items += part.items;
    out_.bytes += part.bytes;
    if (part.has_oldest && (!out_.has_oldest || part.oldest_mtime_ns < out_.oldest_mtime_ns)) {
      out_.has_oldest = true;
      out_.oldest_mtime_ns = part.oldest_mtime_ns;
    }
    out_.partial = out_.partial || part.partial;
    if (out_.err == 0 && part.err != 0) out_.err = part.err;
    out_.unreadable += part.unreadable;
  }

  void flush(int dfd, std::vector<std::string>& names) {
    if (names.empty() || out_.partial) {
      names.clear();
      return;
    }
    SpoolScan a, b;
    const size_t mid = names.size() / 2;
    std::thread helper;
    if (names.size() >= kParallelMin) {
      try {
        helper = std::thread([&] { stat_range(dfd, names, mid, names.size(), b); });
      } catch (const std::system_error&) {
      }
    }
    stat_range(dfd, names, 0, helper.joinable() ? mid : names.size(), a);
    if (helper.joinable()) helper.join();
    merge(a);
    merge(b);
    names.clear();
  }

  void descend(DIR* d, const char* name, int depth) {
    if (!o_.recursive || depth >= o_.max_depth) return;
    int fd = ::openat(::dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) note_error(errno, false);
      return;
    }
    scan(fd, false, depth + 1);
  }
  // Keeps the first errno and counts the entries: never a name (see top).
  void note_error(int err, bool top) {
    if (out_.err == 0) out_.err = err;
    if (top) out_.top_failed = true;
    else ++out_.unreadable;
  }

  const SpoolOptions& o_;
  const ProbeContext& ctx_;
  SpoolScan& out_;
  std::uint64_t visited_ = 0;
};

}  // namespace

SpoolScan scan_spool(const SpoolOptions& opts, const ProbeContext& ctx) {
  SpoolScan out;
  int fd = ::open(opts.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    out.err = errno;
    out.top_failed = true;
    return out;
  }
  Scanner(opts, ctx, out).scan(fd, true, 0);
  return out;
}

namespace {

// One scan on its helper thread. Shared by the helper and the waiter so
// either may finish last.
struct ScanJob {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  SpoolScan result;
  std::atomic<bool> stop{false};
};

// Scans abandoned at their deadline and still running, by spool path.
std::mutex g_stuck_mu;
std::map<std::string, std::shared_ptr<ScanJob>>& stuck_scans() {
  static auto* m = new std::map<std::string, std::shared_ptr<ScanJob>>;  // never destroyed: helpers may outlive main
  return *m;
}

}  // namespace

GuardedScan scan_spool_guarded(const SpoolOptions& opts, const ProbeContext& ctx, Duration grace) {
  {
    std::lock_guard lk(g_stuck_mu);
    auto& stuck = stuck_scans();
    if (auto it = stuck.find(opts.path); it != stuck.end()) {
      bool returned = false;
      {
        std::lock_guard jl(it->second->mu);  // released before erase() may destroy the job
        returned = it->second->done;
      }
      if (!returned) return {GuardedScan::still_stuck, {}};
      stuck.erase(it);  // it returned: scan again
    }
  }
  auto job = std::make_shared<ScanJob>();
  try {
    std::thread([job, opts, deadline = ctx.deadline] {
      ProbeContext hc;
      hc.deadline = deadline;
      hc.stop = &job->stop;
      SpoolScan out = scan_spool(opts, hc);
      std::lock_guard lk(job->mu);
      job->result = std::move(out);
      job->done = true;
      job->cv.notify_all();
    }).detach();
  } catch (const std::system_error& e) {
    SpoolScan out;
    out.err = e.code().value() ? e.code().value() : EAGAIN;
    out.top_failed = true;
    return {GuardedScan::finished, out};
  }
  std::unique_lock lk(job->mu);
  // Wake up now and then to notice a shutdown; then give the helper the
  // grace to wind down with what it counted.
  auto give_up = ctx.deadline + grace;
  while (!job->done) {
    if (ctx.stopping() && !job->stop.load()) {
      job->stop = true;
      give_up = std::min(give_up, Clock::now() + grace);
    }
    auto now = Clock::now();
    if (now >= give_up) break;
    job->cv.wait_until(lk, std::min(give_up, now + std::chrono::milliseconds(50)));
  }
  if (job->done) return {GuardedScan::finished, job->result};
  job->stop = true;
  lk.unlock();
  std::lock_guard sl(g_stuck_mu);
  stuck_scans()[opts.path] = job;
  return {GuardedScan::timed_out, {}};
}

bool spool_scan_stuck(const std::string& path) {
  std::lock_guard lk(g_stuck_mu);
  auto& stuck = stuck_scans();
  auto it = stuck.find(path);
  if (it == stuck.end()) return false;
  std::lock_guard jl(it->second->mu);
  return !it->second->done;
}

const std::vector<Reason>& directory_reasons() {
  static const std::vector<Reason> r = {Reason::io_error, Reason::io_timeout};
  return r;
}

ProbeResult SpoolDirectoryProbe::run(const ProbeContext& ctx) {
  if (ctx.tracing()) {
    ctx.note("scan", opts_.path + (opts_.recursive ? " (recursive)" : "") +
                         (opts_.pattern.empty() ? "" : ", pattern " + opts_.pattern));
  }
  auto guarded = scan_spool_guarded(opts_, ctx);
  if (guarded.outcome != GuardedScan::finished) {
    ProbeResult r = ProbeResult::fail(
        Reason::io_timeout,
        guarded.outcome == GuardedScan::timed_out
            ? "scan of " + opts_.path + " did not return before the deadline (a hung mount?); not scanning it again "
                                        "until that scan returns"
            : "a scan of " + opts_.path + " from an earlier run has still not returned (a hung mount?)");
    r.add("pacs_queue_scan_partial", "1 if the directory scan stopped early (counts are a lower bound).", 1);
    if (ctx.log && guarded.outcome == GuardedScan::timed_out) ctx.log->warn("spool scan stuck", {{"path", opts_.path}});
    return r;
  }
  const SpoolScan& scan = guarded.scan;
  if (ctx.tracing()) {  // counts only: never a file name (names may carry patient data)
    ctx.note("counted", std::to_string(scan.items) + " files, " + std::to_string(scan.bytes) + " bytes" +
                            (scan.partial ? ", stopped early" : "") +
                            (scan.unreadable ? ", " + std::to_string(scan.unreadable) + " unreadable" : "") +
                            (scan.err ? std::string(", first error: ") + std::strerror(scan.err) : ""));
  }
  ProbeResult r;
  if (scan.err && scan.top_failed) {
    r = ProbeResult::fail(Reason::io_error, "scanning " + opts_.path + ": " + std::strerror(scan.err));
  } else if (scan.err) {
    // Counts and errno only: the entries' names may be patients' (see top).
    r = ProbeResult::fail(Reason::io_error, "scanning " + opts_.path + ": " + std::to_string(scan.unreadable) +
                                                (scan.unreadable == 1 ? " entry" : " entries") +
                                                " could not be read (first error: " + std::strerror(scan.err) + ")");
  } else if (scan.partial) {
    r = ProbeResult::fail(Reason::io_timeout, std::string("scan of ") + opts_.path +
                                                  (ctx.stopping() ? " stopped by shutdown" : " hit its deadline") +
                                                  "; counts are a lower bound");
  } else {
    r = ProbeResult::ok();
  }
  // A folder that could not be opened at all has no counts to report.
  if (scan.top_failed && scan.items == 0) return r;
  r.add("pacs_queue_items", "Items waiting in the queue.", static_cast<double>(scan.items));
  r.add("pacs_queue_bytes", "Bytes of the files waiting in a spool directory.", static_cast<double>(scan.bytes));
  double age = 0;
  if (scan.has_oldest) {
    auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    age = std::max<double>(0, static_cast<double>(now - scan.oldest_mtime_ns) / 1e9);
  }
  r.add("pacs_queue_oldest_item_age_seconds", "Age of the oldest waiting item (0 when the queue is empty).", age);
  r.add("pacs_queue_scan_partial", "1 if the directory scan stopped early (counts are a lower bound).",
        scan.partial ? 1 : 0);
  return r;
}

}  // namespace pacs::queue
