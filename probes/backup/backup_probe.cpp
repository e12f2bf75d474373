#include <cmath>
#include <cstdio>
#include <cstring>

#include "probes/backup/backup.h"
#include "probes/log.h"

namespace pacs::backup {

namespace {

constexpr const char* kFilesHelp = "Backup files found (regular files matching the pattern; 1 for a single file).";
constexpr const char* kAgeHelp = "Seconds since the newest backup file was last modified.";
constexpr const char* kSizeHelp = "Size of the newest backup file in bytes.";
constexpr const char* kPreviousHelp = "Size of the backup before the newest one in bytes.";
constexpr const char* kMaxAgeHelp = "Configured maximum age of the newest backup (max_age) in seconds.";
constexpr const char* kMinBytesHelp = "Configured minimum size of the newest backup (min_bytes) in bytes.";

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::string human_age(double seconds) {
  auto s = static_cast<long long>(std::max(0.0, std::floor(seconds)));
  char buf[64];
  if (s >= 86400) std::snprintf(buf, sizeof buf, "%lldd %lldh", s / 86400, s % 86400 / 3600);
  else if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh %lldm", s / 3600, s % 3600 / 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%lldm %llds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%llds", s);
  return buf;
}

std::string human_bytes(double bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  else std::snprintf(buf, sizeof buf, "%.1f %s", bytes, units[u]);
  return buf;
}

const std::vector<Reason>& backup_reasons() {
  static const std::vector<Reason> r = {Reason::stale, Reason::too_small, Reason::io_error, Reason::io_timeout};
  return r;
}

ProbeResult BackupProbe::run(const ProbeContext& ctx) {
  const bool folder = !opts_.pattern.empty();
  const std::string where = folder ? "\"" + opts_.pattern + "\" in " + opts_.path : opts_.path;
  auto configured = [&](ProbeResult& r) {
    r.add("pacs_backup_max_age_seconds", kMaxAgeHelp, std::chrono::duration<double>(opts_.max_age).count());
    if (opts_.min_bytes > 0) r.add("pacs_backup_min_size_bytes", kMinBytesHelp, static_cast<double>(opts_.min_bytes));
  };

  ctx.note("scan", folder ? "list " + opts_.path + " for " + opts_.pattern : "stat " + opts_.path);
  auto o = watchdog_->scan(opts_, ctx.deadline);
  switch (o.kind) {
    case ScanWatchdog::Outcome::timed_out: {
      if (ctx.log) ctx.log->warn("backup path stuck", {{"path", opts_.path}});
      auto r = ProbeResult::fail(Reason::io_timeout, (folder ? "listing " : "stat of ") + opts_.path +
                                                         " did not return before the deadline; not trying again "
                                                         "until it does");
      configured(r);
      return r;
    }
    case ScanWatchdog::Outcome::still_stuck: {
      auto r = ProbeResult::fail(Reason::io_timeout, (folder ? "listing " : "stat of ") + opts_.path +
                                                         " from an earlier run has still not returned");
      configured(r);
      return r;
    }
    case ScanWatchdog::Outcome::no_thread: {
      auto r = ProbeResult::fail(Reason::internal, "cannot start a thread to scan " + opts_.path);
      configured(r);
      return r;
    }
    case ScanWatchdog::Outcome::ok: break;
  }
  const BackupScan& s = o.scan;
  ctx.note("found", std::to_string(s.files) + " file(s), " + std::to_string(s.unreadable) + " unreadable");

  ProbeResult r = ProbeResult::ok();
  configured(r);
  if (s.err) {
    std::string what = s.err_op == "stat" ? "stat(" + opts_.path + ")"
                       : s.err_op == "readdir" ? "reading the folder " + opts_.path
                                               : "cannot open the folder " + opts_.path;
    std::string why = s.err == EISDIR ? "is a folder (set pattern to watch the backups in it)"
                      : (s.err == EINVAL && s.err_op == "stat") ? "not a regular file"
                                                                : std::strerror(s.err);
    r.success = false;
    r.reason = Reason::io_error;
    r.message = what + ": " + why;
    return r;
  }
  if (s.unreadable > 0) {
    // The newest backup may be one of them: no verdict on age or size.
    r.success = false;
    r.reason = Reason::io_error;
    r.message = "cannot stat " + std::to_string(s.unreadable) + " of " + std::to_string(s.unreadable + s.files) +
                " files matching " + where + ": " + std::strerror(s.unreadable_err);
    return r;
  }

  r.add("pacs_backup_files", kFilesHelp, static_cast<double>(s.files));
  if (!s.has_newest) {
    r.success = false;
    r.reason = Reason::stale;
    r.message = "no backup: no regular file matches " + where;
    return r;
  }

  // File mode: the file's size before it was last rewritten, if this
  // instance saw it then.
  std::optional<std::uint64_t> previous;
  if (folder) {
    if (s.has_previous) previous = s.previous_size;
  } else {
    if (last_seen_ && last_seen_->first != s.newest_mtime_ns) previous_size_ = last_seen_->second;
    last_seen_ = {s.newest_mtime_ns, s.newest_size};
    previous = previous_size_;
  }

  double age = std::max(0.0, unix_now() - static_cast<double>(s.newest_mtime_ns) / 1e9);
  r.add("pacs_backup_newest_age_seconds", kAgeHelp, age);
  r.add("pacs_backup_newest_size_bytes", kSizeHelp, static_cast<double>(s.newest_size));
  if (previous) r.add("pacs_backup_previous_size_bytes", kPreviousHelp, static_cast<double>(*previous));

  const double max_age = std::chrono::duration<double>(opts_.max_age).count();
  const std::string newest = folder ? "newest backup (" + std::to_string(s.files) + " found)" : "backup";
  if (age > max_age) {
    r.success = false;
    r.reason = Reason::stale;
    r.message = newest + " is " + human_age(age) + " old (max_age " + format_duration(opts_.max_age) + ")";
    return r;
  }
  if (s.newest_size < opts_.min_bytes) {
    r.success = false;
    r.reason = Reason::too_small;
    r.message = newest + " is " + human_bytes(static_cast<double>(s.newest_size)) + " (" +
                std::to_string(s.newest_size) + " bytes; min_bytes " + std::to_string(opts_.min_bytes) + ")";
    return r;
  }
  r.message = newest + " is " + human_age(age) + " old, " + human_bytes(static_cast<double>(s.newest_size));
  return r;
}

}  // namespace pacs::backup
