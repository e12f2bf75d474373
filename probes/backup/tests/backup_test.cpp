// Backup probe on real files in temp folders (mtimes set with utimensat):
// fresh, stale, too small, no backup yet, missing folder, a file the agent's
// user cannot stat (as uid nobody), the previous backup's size in both
// modes, hidden/symlinked/non-matching names ignored, file names never in a
// message; a scan that blocks returns at the deadline and the stuck path is
// not scanned again while it blocks; config rules and the sample file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <thread>

#include "agent/config.h"
#include "probes/backup/backup.h"
#include "tests/support/probe_testing.h"
#include "tests/support/support.h"

namespace pacs::backup {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::ctx_for;
using test::find_sample;
using test::sample_value;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A file of `size` bytes last modified `age` ago.
fs::path backup_file(const fs::path& p, std::size_t size, std::chrono::seconds age) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << std::string(size, 'x');
  double t = unix_now() - static_cast<double>(age.count());
  timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(t);
  ts[0].tv_nsec = ts[1].tv_nsec = 0;
  EXPECT_EQ(::utimensat(AT_FDCWD, p.c_str(), ts, 0), 0);
  return p;
}

BackupOptions folder(const fs::path& dir, std::string pattern = "*.tar.gz") {
  BackupOptions o;
  o.path = dir.string();
  o.pattern = std::move(pattern);
  return o;
}

ProbeResult run(const BackupOptions& o, Duration timeout = 5s) {
  BackupProbe p(o, std::make_shared<ScanWatchdog>());
  return p.run(ctx_for(timeout));
}

std::string describe(const ProbeResult& r) {
  std::string s = "success=" + std::to_string(r.success) + " reason=" + std::string(to_string(r.reason)) +
                  " message=\"" + r.message + "\" samples:";
  for (const auto& x : r.samples) s += " " + x.name + "=" + std::to_string(x.value);
  return s;
}

TEST(BackupProbe, FreshBackupInAFolder) {
  test::TempDir tmp;
  auto dir = tmp / "backups";
  backup_file(dir / "orthanc-2024-01-29.tar.gz", 3000, 50h);
  backup_file(dir / "orthanc-2024-01-30.tar.gz", 4000, 26h);  // the previous one
  backup_file(dir / "orthanc-2024-01-31.tar.gz", 5000, 2h);   // the newest
  backup_file(dir / "orthanc-2024-02-01.log", 99, 1h);        // does not match
  backup_file(dir / ".orthanc-2024-02-01.tar.gz.partial", 1, 10s);  // hidden: in progress
  fs::create_directories(dir / "old.tar.gz");                 // a folder: not a backup
  fs::create_symlink(dir / "orthanc-2024-01-29.tar.gz", dir / "latest.tar.gz");  // not followed

  auto o = folder(dir);
  o.min_bytes = 1000;
  double before = unix_now();
  auto r = run(o);
  double after = unix_now();
  ASSERT_TRUE(r.success) << describe(r);
  EXPECT_EQ(sample_value(r, "pacs_backup_files"), 3);
  EXPECT_EQ(sample_value(r, "pacs_backup_newest_size_bytes"), 5000);
  EXPECT_EQ(sample_value(r, "pacs_backup_previous_size_bytes"), 4000);
  // 2 h to the second (mtimes are whole seconds), plus the time the run took.
  EXPECT_NEAR(sample_value(r, "pacs_backup_newest_age_seconds"), 7200, 1.5 + (after - before));
  EXPECT_EQ(sample_value(r, "pacs_backup_max_age_seconds"), 26 * 3600);
  EXPECT_EQ(sample_value(r, "pacs_backup_min_size_bytes"), 1000);
  EXPECT_EQ(r.message, "newest backup (3 found) is 2h 0m old, 4.9 KiB");
  for (const auto& s : r.samples) EXPECT_TRUE(s.labels.empty()) << s.name;
}

TEST(BackupProbe, StaleBackupFailsWithItsAge) {
  test::TempDir tmp;
  backup_file(tmp / "b" / "db.dump", 100, 30h);
  backup_file(tmp / "b" / "db-older.dump", 100, 54h);
  auto r = run(folder(tmp / "b", "*.dump"));
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.reason, Reason::stale) << describe(r);
  EXPECT_EQ(r.message, "newest backup (2 found) is 1d 6h old (max_age 1d2h)");
  EXPECT_NEAR(sample_value(r, "pacs_backup_newest_age_seconds"), 30 * 3600, 5);
  EXPECT_EQ(sample_value(r, "pacs_backup_files"), 2);

  // A weekly backup with max_age = 8d is fine at that age.
  auto o = folder(tmp / "b", "*.dump");
  o.max_age = std::chrono::hours(8 * 24);
  EXPECT_TRUE(run(o).success);
}

TEST(BackupProbe, TooSmallNewestBackupFails) {
  test::TempDir tmp;
  backup_file(tmp / "b" / "a.tar", 10 << 20, 25h);
  backup_file(tmp / "b" / "b.tar", 1536, 1h);
  auto o = folder(tmp / "b", "*.tar");
  o.min_bytes = 1 << 20;
  auto r = run(o);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.reason, Reason::too_small) << describe(r);
  EXPECT_EQ(r.message, "newest backup (2 found) is 1.5 KiB (1536 bytes; min_bytes 1048576)");
  EXPECT_EQ(sample_value(r, "pacs_backup_newest_size_bytes"), 1536);
  EXPECT_EQ(sample_value(r, "pacs_backup_previous_size_bytes"), 10 << 20);
  // Stale wins over too small: the older problem is named first.
  o.max_age = 30min;
  EXPECT_EQ(run(o).reason, Reason::stale);
}

TEST(BackupProbe, NoMatchingFileIsStale) {
  test::TempDir tmp;
  backup_file(tmp / "b" / "notes.txt", 10, 1h);
  auto r = run(folder(tmp / "b"));
  EXPECT_EQ(r.reason, Reason::stale) << describe(r);
  EXPECT_EQ(r.message, "no backup: no regular file matches \"*.tar.gz\" in " + (tmp / "b").string());
  EXPECT_EQ(sample_value(r, "pacs_backup_files"), 0);
  EXPECT_EQ(find_sample(r, "pacs_backup_newest_age_seconds"), nullptr);
}

TEST(BackupProbe, MissingFolderAndMissingFileAreIoErrors) {
  test::TempDir tmp;
  auto r = run(folder(tmp / "nope"));
  EXPECT_EQ(r.reason, Reason::io_error) << describe(r);
  EXPECT_EQ(r.message, "cannot open the folder " + (tmp / "nope").string() + ": No such file or directory");
  EXPECT_EQ(find_sample(r, "pacs_backup_files"), nullptr);
  EXPECT_EQ(sample_value(r, "pacs_backup_max_age_seconds"), 26 * 3600);

  BackupOptions file;
  file.path = (tmp / "nope.done").string();
  r = run(file);
  EXPECT_EQ(r.reason, Reason::io_error);
  EXPECT_EQ(r.message, "stat(" + file.path + "): No such file or directory");

  file.path = tmp.path().string();  // a folder without pattern
  r = run(file);
  EXPECT_EQ(r.reason, Reason::io_error);
  EXPECT_EQ(r.message, "stat(" + file.path + "): is a folder (set pattern to watch the backups in it)");

  auto not_dir = backup_file(tmp / "plain", 1, 1s);  // pattern on a file
  r = run(folder(not_dir));
  EXPECT_EQ(r.reason, Reason::io_error);
  EXPECT_EQ(r.message, "cannot open the folder " + not_dir.string() + ": Not a directory");
}

// The suite runs as root, whom no permission stops; a child that dropped
// to uid/gid nobody sees what the agent's user would.
TEST(BackupProbe, UnreadableFilesAreIoErrorsWithoutFileNames) {
  test::TempDir tmp;
  auto dir = tmp / "b";
  // A name that could carry PHI: it must not show up in any message.
  backup_file(dir / "DOE^JOHN-PID4711.tar.gz", 100, 1h);
  backup_file(dir / "SMITH^ANN-PID0815.tar.gz", 100, 2h);
  fs::permissions(tmp.path(), fs::perms::owner_all | fs::perms::others_exec);  // nobody may pass through
  // The folder can be listed but not searched: names visible, stat refused.
  fs::permissions(dir, fs::perms::owner_all | fs::perms::others_read);
  auto marker_dir = tmp / "private";
  auto marker = backup_file(marker_dir / "backup.done", 0, 1h);
  fs::permissions(marker_dir, fs::perms::owner_all);  // root only

  std::string got = test::run_as_nobody([&] {
    auto r1 = run(folder(dir));
    BackupOptions f;
    f.path = marker.string();
    auto r2 = run(f);
    return std::string(to_string(r1.reason)) + "|" + r1.message + "\n" + std::string(to_string(r2.reason)) + "|" +
           r2.message;
  });
  if (::getuid() != 0) GTEST_SKIP() << "not root: cannot set up a file another user cannot read";
  EXPECT_EQ(got, "io_error|cannot stat 2 of 2 files matching \"*.tar.gz\" in " + dir.string() +
                     ": Permission denied\nio_error|stat(" + marker.string() + "): Permission denied");
  for (const char* phi : {"DOE", "JOHN", "4711", "SMITH", "0815"}) EXPECT_EQ(got.find(phi), std::string::npos);

  // Control: root can read them, so the names did reach the scan.
  auto r = run(folder(dir));
  EXPECT_TRUE(r.success) << describe(r);
  EXPECT_EQ(sample_value(r, "pacs_backup_files"), 2);
}

TEST(BackupProbe, OneFileRewrittenInPlaceGetsAPreviousSize) {
  test::TempDir tmp;
  auto f = backup_file(tmp / "pacs.sql.gz", 8000, 3h);
  BackupOptions o;
  o.path = f.string();
  BackupProbe probe(o, std::make_shared<ScanWatchdog>());
  auto r = probe.run(ctx_for(5s));
  ASSERT_TRUE(r.success) << describe(r);
  EXPECT_EQ(sample_value(r, "pacs_backup_files"), 1);
  EXPECT_EQ(sample_value(r, "pacs_backup_newest_size_bytes"), 8000);
  EXPECT_EQ(find_sample(r, "pacs_backup_previous_size_bytes"), nullptr);  // not known yet
  EXPECT_EQ(r.message, "backup is 3h 0m old, 7.8 KiB");

  r = probe.run(ctx_for(5s));  // unchanged: still unknown
  EXPECT_EQ(find_sample(r, "pacs_backup_previous_size_bytes"), nullptr);

  backup_file(f, 2000, 1min);  // tonight's backup, much smaller
  r = probe.run(ctx_for(5s));
  EXPECT_EQ(sample_value(r, "pacs_backup_newest_size_bytes"), 2000);
  EXPECT_EQ(sample_value(r, "pacs_backup_previous_size_bytes"), 8000);
  r = probe.run(ctx_for(5s));  // and it stays until the next backup
  EXPECT_EQ(sample_value(r, "pacs_backup_previous_size_bytes"), 8000);

  // A symlink to the latest backup is followed in file mode.
  fs::create_symlink(f, tmp / "latest");
  o.path = (tmp / "latest").string();
  r = run(o);
  EXPECT_TRUE(r.success) << describe(r);
  EXPECT_EQ(sample_value(r, "pacs_backup_newest_size_bytes"), 2000);
}

// A scan function that blocks on one path until released.
struct Blocker {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::string stuck_path;
  std::atomic<int> calls_on_stuck{0};
  ScanFn fn() {
    return [this](const BackupOptions& o, const std::atomic<bool>& cancel) {
      if (o.path == stuck_path) {
        ++calls_on_stuck;
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return release; });
      }
      return scan_backups(o, cancel);
    };
  }
  void unblock() {
    std::lock_guard lk(mu);
    release = true;
    cv.notify_all();
  }
};

TEST(BackupWatchdog, StuckPathReturnsAtTheDeadlineAndIsNotScannedAgain) {
  test::TempDir stuck_dir, healthy_dir;
  backup_file(stuck_dir / "a.tar.gz", 10, 1h);
  backup_file(healthy_dir / "a.tar.gz", 10, 1h);
  auto blocker = std::make_shared<Blocker>();
  blocker->stuck_path = stuck_dir.path().string();
  auto wd = std::make_shared<ScanWatchdog>(blocker->fn());

  BackupProbe stuck(folder(stuck_dir.path()), wd);
  auto t0 = Clock::now();
  auto r = stuck.run(ctx_for(300ms));
  auto took = Clock::now() - t0;
  EXPECT_EQ(r.reason, Reason::io_timeout) << describe(r);
  EXPECT_EQ(r.message, "listing " + stuck_dir.path().string() +
                           " did not return before the deadline; not trying again until it does");
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(wd->stuck(stuck_dir.path().string()));
  EXPECT_EQ(find_sample(r, "pacs_backup_files"), nullptr);

  // Another path works meanwhile; later runs on the stuck path fail at once
  // without another thread (scheduled, on-demand and another pattern alike).
  EXPECT_TRUE(BackupProbe(folder(healthy_dir.path()), wd).run(ctx_for(5s)).success);
  BackupProbe other_pattern(folder(stuck_dir.path(), "*.dump"), wd);
  for (auto* p : {&stuck, &other_pattern}) {
    t0 = Clock::now();
    r = p->run(ctx_for(5s));
    EXPECT_LT(Clock::now() - t0, 1s);
    EXPECT_EQ(r.reason, Reason::io_timeout);
    EXPECT_EQ(r.message, "listing " + stuck_dir.path().string() + " from an earlier run has still not returned");
  }
  EXPECT_EQ(blocker->calls_on_stuck.load(), 1);
  EXPECT_EQ(wd->scans_in_flight(), 1);

  // The mount comes back: the next run scans again.
  blocker->unblock();
  auto end = Clock::now() + 10s;
  while (wd->scans_in_flight() > 0 && Clock::now() < end) std::this_thread::sleep_for(5ms);
  r = stuck.run(ctx_for(5s));
  EXPECT_TRUE(r.success) << describe(r);
  EXPECT_EQ(blocker->calls_on_stuck.load(), 2);
}

TEST(BackupWatchdog, ConcurrentRunsOfOneTargetShareOneScan) {
  test::TempDir dir;
  backup_file(dir / "a.tar.gz", 10, 1h);
  auto blocker = std::make_shared<Blocker>();
  blocker->stuck_path = dir.path().string();
  auto wd = std::make_shared<ScanWatchdog>(blocker->fn());
  ProbeResult a, b;
  std::thread ta([&] { a = BackupProbe(folder(dir.path()), wd).run(ctx_for(10s)); });
  auto end = Clock::now() + 10s;
  while (blocker->calls_on_stuck.load() == 0 && Clock::now() < end) std::this_thread::sleep_for(2ms);
  std::thread tb([&] { b = BackupProbe(folder(dir.path()), wd).run(ctx_for(10s)); });
  std::this_thread::sleep_for(50ms);  // let b join (not an assertion: both must succeed either way)
  blocker->unblock();
  ta.join();
  tb.join();
  EXPECT_TRUE(a.success) << describe(a);
  EXPECT_TRUE(b.success) << describe(b);
  EXPECT_EQ(blocker->calls_on_stuck.load(), 1);
}

TEST(BackupMessages, HumanAgesAndSizes) {
  EXPECT_EQ(human_age(5), "5s");
  EXPECT_EQ(human_age(65), "1m 5s");
  EXPECT_EQ(human_age(3 * 3600 + 120), "3h 2m");
  EXPECT_EQ(human_age(30 * 3600), "1d 6h");
  EXPECT_EQ(human_age(-3), "0s");
  EXPECT_EQ(human_bytes(17), "17 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(3.5 * (1ull << 30)), "3.5 GiB");
}

const BackupProbe& as_backup(const std::unique_ptr<Probe>& p) {
  auto* b = dynamic_cast<const BackupProbe*>(p.get());
  if (!b) throw std::runtime_error("not a BackupProbe");
  return *b;
}

TEST(BackupConfig, ParsesAndBuildsProbe) {
  auto c = parse_config("[[backup]]\nname = \"db\"\npath = \"/srv/backup\"\npattern = \"*.sql.gz\"\n"
                        "max_age = \"8d\"\nmin_bytes = 1048576\ntimeout = \"5s\"\n",
                        "t.toml");
  ASSERT_EQ(c->probes.size(), 1u);
  EXPECT_EQ(c->probes[0].probe, "backup");
  EXPECT_EQ(c->probes[0].kind, "backup");
  EXPECT_EQ(c->probes[0].target, "db");
  EXPECT_EQ(c->probes[0].reasons,
            (std::vector<Reason>{Reason::stale, Reason::too_small, Reason::io_error, Reason::io_timeout}));
  (void)as_backup(c->probes[0].make());
  // Defaults: one file, 26 h.
  c = parse_config("[[backup]]\nname = \"m\"\npath = \"/srv/backup/done\"\n", "t.toml");
  EXPECT_EQ(c->probes.size(), 1u);
}

TEST(BackupConfig, RejectsBadTables) {
  test::expect_config_error("[[backup]]\nname = \"b\"\n", "t.toml:1: backup[0]: missing required key \"path\"");
  test::expect_config_error("[[backup]]\nname = \"b\"\npath = \"rel/x\"\n",
                            "t.toml:3: backup[0].path: must be an absolute path");
  test::expect_config_error("[[backup]]\nname = \"b\"\npath = \"/x\"\npattern = \"\"\n",
                            "t.toml:4: backup[0].pattern: must not be empty (omit it when path is the backup file "
                            "itself)");
  test::expect_config_error("[[backup]]\nname = \"b\"\npath = \"/x\"\npattern = \"a/*.gz\"\n",
                            "t.toml:4: backup[0].pattern: matches file names in path only; must not contain '/'");
  test::expect_config_error("[[backup]]\nname = \"b\"\npath = \"/x\"\nmax_age = \"0s\"\n",
                            "t.toml:4: backup[0].max_age: must be greater than 0");
  test::expect_config_error("[[backup]]\nname = \"b\"\npath = \"/x\"\nmin_bytes = -1\n",
                            "t.toml:4: backup[0].min_bytes: must be 0..9223372036854775807");
  test::expect_config_error("[[backup]]\nname = \"b\"\npath = \"/x\"\nmax_size = 3\n",
                            "t.toml:4: backup[0].max_size: unknown key");
}

TEST(BackupConfig, SampleTomlParses) {
  std::ifstream in(std::string(PACS_SOURCE_DIR) + "/probes/backup/sample.toml");
  ASSERT_TRUE(in) << "probes/backup/sample.toml missing";
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = parse_config(ss.str(), "sample.toml");
  EXPECT_GE(c->probes.size(), 2u);
  for (const auto& p : c->probes) EXPECT_EQ(p.kind, "backup");
}

}  // namespace
}  // namespace pacs::backup
