// The backup probe kind: is the newest backup recent and big enough?
// One [[backup]] target watches either a folder (`pattern` = a glob on the
// file names of its backups) or one file (a backup overwritten in place, or
// a marker the backup job touches when it succeeds).
//
// Listing and stat-ing run on a helper thread under a per-path watchdog, as
// the filesystem kind's statvfs does: a dead NFS/SMB mount never holds a
// probe worker beyond its deadline, and at most one helper thread per path
// exists however long the mount stays stuck.
//
// PHI rule: backup file names may carry patient or study identifiers (DICOM
// exports, per-study archives). Nothing a scan finds is named anywhere:
// messages and logs carry the configured path and pattern, counts, sizes,
// ages and errno texts only.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "probes/kind.h"

namespace pacs::backup {

const Kind& kind();

// Parses one [[backup]] table into its one ProbeSpec.
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const ConfigTable& agent);

struct BackupOptions {
  std::string path;     // absolute; a folder when `pattern` is set, else one file
  std::string pattern;  // fnmatch(3) glob on file names (FNM_PERIOD); empty = `path` is the file
  Duration max_age = std::chrono::hours(26);
  std::uint64_t min_bytes = 0;  // 0 = no size check
};

// What one scan found. Times are Unix nanoseconds (mtime).
struct BackupScan {
  int err = 0;            // the folder (or the file) itself: errno, 0 if fine
  std::string err_op;     // "opendir", "readdir", "stat": what failed
  std::uint64_t files = 0;  // matching regular files that could be stat-ed
  std::uint64_t unreadable = 0;  // matching names whose stat failed (other than vanished)
  int unreadable_err = 0;        // the first such errno
  bool has_newest = false;
  std::int64_t newest_mtime_ns = 0;
  std::uint64_t newest_size = 0;
  bool has_previous = false;  // the second newest (folders only)
  std::uint64_t previous_size = 0;
  bool cancelled = false;  // stopped early: its caller gave up
};

// Lists `opts.path` (folder mode) or stats it (file mode). Blocks as long
// as the filesystem does; polls `cancel` between entries. Thread-safe.
BackupScan scan_backups(const BackupOptions& opts, const std::atomic<bool>& cancel);

// scan_backups or a stand-in (tests inject one that blocks).
using ScanFn = std::function<BackupScan(const BackupOptions&, const std::atomic<bool>& cancel)>;

// Runs scans on helper threads and waits for them only until a deadline.
// Keyed by path: while a scan of a path has not returned and its caller has
// given up, every later scan of that path answers `still_stuck` at once,
// without a thread; a scan of the same path and pattern already running is
// joined. Helper threads are detached and own what they touch; an abandoned
// scan stops at its next entry if the filesystem lets it get there.
//
// Thread-safety: every method may be called from any thread.
class ScanWatchdog {
 public:
  explicit ScanWatchdog(ScanFn fn = scan_backups);
  ScanWatchdog(const ScanWatchdog&) = delete;
  ScanWatchdog& operator=(const ScanWatchdog&) = delete;

  // The instance configured probes share (stuck marks survive reloads and
  // are seen by on-demand /probe instances).
  static std::shared_ptr<ScanWatchdog> process_default();

  struct Outcome {
    enum Kind { ok, timed_out, still_stuck, no_thread } kind = ok;
    BackupScan scan;  // when ok
  };
  Outcome scan(const BackupOptions& opts, Clock::time_point deadline);

  bool stuck(const std::string& path) const;
  int scans_in_flight() const;

 private:
  struct Slot;
  ScanFn fn_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Slot>> slots_;
};

class BackupProbe : public Probe {
 public:
  BackupProbe(BackupOptions opts, std::shared_ptr<ScanWatchdog> watchdog)
      : opts_(std::move(opts)), watchdog_(std::move(watchdog)) {}
  ProbeResult run(const ProbeContext& ctx) override;

 private:
  BackupOptions opts_;
  std::shared_ptr<ScanWatchdog> watchdog_;
  // File mode: the file as the last run saw it, so a new backup written in
  // place has a "previous" size. One run at a time per instance (Probe).
  std::optional<std::pair<std::int64_t, std::uint64_t>> last_seen_;  // mtime_ns, size
  std::optional<std::uint64_t> previous_size_;
};

const std::vector<Reason>& backup_reasons();

// "26h", "1d 2h", "45m", "12s": a coarse human age for messages.
std::string human_age(double seconds);
// "1.5 GiB", "120 KiB", "17 B".
std::string human_bytes(double bytes);

}  // namespace pacs::backup
