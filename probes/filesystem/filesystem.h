// The filesystem probe kind: statvfs of image-store volumes under a
// watchdog. The pieces tests inject into (the stat function, the watchdog)
// are public; the agent sees only the Kind descriptor.
#pragma once

#include <sys/statvfs.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "probes/kind.h"

namespace pacs::filesystem {

const Kind& kind();

// Parses one [[filesystem]] table into its one ProbeSpec.
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const ConfigTable& agent);

// statvfs(2) or a stand-in: fills `out`, returns 0 or an errno value.
// May block for ever (a hard NFS mount whose server is gone).
using StatFn = std::function<int(const std::string& path, struct statvfs& out)>;
// statvfs(2), with ST_RDONLY taken from the filesystem's superblock options
// in /proc/self/mountinfo rather than from the mount the agent sees: under
// systemd's ProtectSystem=strict every path is a read-only bind *view*, and
// statvfs would report all volumes read-only. An image store remounted
// read-only after I/O errors has a read-only superblock, so it still shows.
int system_statvfs(const std::string& path, struct statvfs& out);

// From /proc/self/mountinfo text: is the superblock of the mount holding
// `path` (device `dev`, canonical path `path`) read-only? Matches by device
// first, then by the longest mount point containing `path` (btrfs and
// overlayfs report anonymous devices). nullopt when nothing matches.
std::optional<bool> superblock_readonly(std::string_view mountinfo, dev_t dev, const std::string& path);

// Runs a StatFn on a helper thread and waits for it only until a deadline,
// so a stuck mount never hangs a probe. While a call on a path has not
// returned, no new call on that path is started (stat() answers `stuck` at
// once): at most one helper thread per path exists, however long the mount
// stays stuck and however often the probe runs. The helper thread is
// detached; it owns what it touches, so it may outlive the watchdog.
//
// Thread-safety: every method may be called from any thread.
class StatWatchdog {
 public:
  explicit StatWatchdog(StatFn fn = system_statvfs);
  StatWatchdog(const StatWatchdog&) = delete;
  StatWatchdog& operator=(const StatWatchdog&) = delete;

  // The instance configured probes share, so a path that went stuck stays
  // marked across reloads and across on-demand /probe instances.
  static std::shared_ptr<StatWatchdog> process_default();

  struct Outcome {
    enum Kind { ok, error, timed_out, still_stuck } kind = error;
    int err = 0;             // errno when kind == error
    struct statvfs st {};    // when kind == ok
  };
  Outcome stat(const std::string& path, Clock::time_point deadline);

  bool stuck(const std::string& path) const;  // a call on it has not returned
  int calls_in_flight() const;                // helper threads still running

 private:
  struct Slot;
  StatFn fn_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Slot>> slots_;
};

// One [[filesystem]] target: statvfs of `path` under the watchdog.
struct FilesystemOptions {
  std::string path;
};

class FilesystemProbe : public Probe {
 public:
  FilesystemProbe(FilesystemOptions opts, std::shared_ptr<StatWatchdog> watchdog);
  ProbeResult run(const ProbeContext& ctx) override;

 private:
  FilesystemOptions opts_;
  std::shared_ptr<StatWatchdog> watchdog_;
};

// The reasons a filesystem probe can produce.
const std::vector<Reason>& filesystem_reasons();

}  // namespace pacs::filesystem
