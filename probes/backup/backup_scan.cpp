// The blocking part: list a folder or stat one file. Runs on a watchdog
// helper thread (backup_watchdog.cpp), never on a probe worker directly.
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "probes/backup/backup.h"

namespace pacs::backup {

namespace {

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

BackupScan scan_file(const BackupOptions& opts) {
  BackupScan s;
  struct stat st {};
  // A configured file may be a symlink to the latest backup: follow it.
  if (::stat(opts.path.c_str(), &st) != 0) {
    s.err = errno;
    s.err_op = "stat";
    return s;
  }
  if (!S_ISREG(st.st_mode)) {
    s.err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    s.err_op = "stat";
    return s;
  }
  s.files = 1;
  s.has_newest = true;
  s.newest_mtime_ns = mtime_ns(st);
  s.newest_size = static_cast<std::uint64_t>(st.st_size);
  return s;
}

BackupScan scan_folder(const BackupOptions& opts, const std::atomic<bool>& cancel) {
  BackupScan s;
  int dfd = ::open(opts.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    s.err = errno;
    s.err_op = "opendir";
    return s;
  }
  DIR* dir = ::fdopendir(dfd);
  if (!dir) {
    s.err = errno;
    s.err_op = "opendir";
    ::close(dfd);
    return s;
  }
  std::int64_t newest = 0, previous = 0;
  for (unsigned n = 0;; ++n) {
    if ((n & 255) == 255 && cancel.load(std::memory_order_relaxed)) {
      s.cancelled = true;
      break;
    }
    errno = 0;
    dirent* e = ::readdir(dir);
    if (!e) {
      if (errno != 0) {
        s.err = errno;
        s.err_op = "readdir";
      }
      break;
    }
    // FNM_PERIOD: like a shell glob, "*" does not match a leading '.', so
    // hidden files (rsync's .name.XXXXXX while it writes) are not backups.
    if (::fnmatch(opts.pattern.c_str(), e->d_name, FNM_PERIOD) != 0) continue;
    if (e->d_type != DT_UNKNOWN && e->d_type != DT_REG) continue;  // folders, symlinks, fifos
    struct stat st {};
    if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // rotated away between listing and stat
      if (s.unreadable++ == 0) s.unreadable_err = errno;
      continue;
    }
    if (!S_ISREG(st.st_mode)) continue;
    ++s.files;
    std::int64_t m = mtime_ns(st);
    auto size = static_cast<std::uint64_t>(st.st_size);
    if (!s.has_newest || m > newest) {
      if (s.has_newest) {
        s.has_previous = true;
        previous = newest;
        s.previous_size = s.newest_size;
      }
      s.has_newest = true;
      newest = m;
      s.newest_size = size;
    } else if (!s.has_previous || m > previous) {
      s.has_previous = true;
      previous = m;
      s.previous_size = size;
    }
  }
  ::closedir(dir);  // closes dfd
  s.newest_mtime_ns = newest;
  return s;
}

}  // namespace

BackupScan scan_backups(const BackupOptions& opts, const std::atomic<bool>& cancel) {
  return opts.pattern.empty() ? scan_file(opts) : scan_folder(opts, cancel);
}

}  // namespace pacs::backup
