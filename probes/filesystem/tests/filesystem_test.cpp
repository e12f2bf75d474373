// Filesystem probe: values against statvfs and df, the stuck-mount watchdog
// (with an injected blocking stat), error paths, config parsing.
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "agent/config.h"
#include "probes/filesystem/filesystem.h"
#include "probes/log.h"
#include "tests/support/probe_testing.h"
#include "tests/support/support.h"

namespace pacs::filesystem {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using test::ctx_for;
using test::find_sample;
using test::sample_value;


void expect_within_1pct(double got, double want, const char* what) {
  EXPECT_NEAR(got, want, want * 0.01 + 1) << what;
}

TEST(FilesystemProbe, ValuesAgreeWithStatvfsAndDf) {
  test::TempDir dir;
  FilesystemProbe probe({dir.path().string()}, std::make_shared<StatWatchdog>());
  auto r = probe.run(ctx_for(5s));
  ASSERT_TRUE(r.success) << r.message;
  EXPECT_EQ(r.reason, Reason::none);

  struct statvfs st {};
  ASSERT_EQ(::statvfs(dir.path().c_str(), &st), 0);
  const double bs = static_cast<double>(st.f_frsize);
  expect_within_1pct(sample_value(r, "pacs_filesystem_size_bytes"), st.f_blocks * bs, "size vs statvfs");
  expect_within_1pct(sample_value(r, "pacs_filesystem_avail_bytes"), st.f_bavail * bs, "avail vs statvfs");
  expect_within_1pct(sample_value(r, "pacs_filesystem_free_bytes"), st.f_bfree * bs, "free vs statvfs");
  expect_within_1pct(sample_value(r, "pacs_filesystem_files"), static_cast<double>(st.f_files), "files vs statvfs");
  expect_within_1pct(sample_value(r, "pacs_filesystem_files_free"), static_cast<double>(st.f_ffree), "files_free");
  EXPECT_EQ(sample_value(r, "pacs_filesystem_readonly"), 0);
  EXPECT_EQ(sample_value(r, "pacs_filesystem_stuck"), 0);
  for (const auto& s : r.samples) {
    ASSERT_EQ(s.labels.size(), 1u) << s.name;
    EXPECT_EQ(s.labels[0].first, "path");
    EXPECT_EQ(s.labels[0].second, dir.path().string());
  }

  // The real df, as an admin would check it.
  auto df = test::find_program("df");
  ASSERT_TRUE(df) << "df not found";
  std::string out;
  ASSERT_EQ(test::run_command({*df, "-B1", "--output=size,avail", dir.path().string()}, &out), 0) << out;
  std::istringstream in(out);
  std::string h1, h2;
  double size = 0, avail = 0;
  in >> h1 >> h2 >> size >> avail;
  ASSERT_GT(size, 0) << out;
  expect_within_1pct(sample_value(r, "pacs_filesystem_size_bytes"), size, "size vs df");
  expect_within_1pct(sample_value(r, "pacs_filesystem_avail_bytes"), avail, "avail vs df");
}

TEST(FilesystemProbe, MissingPathIsIoErrorWithErrnoText) {
  test::TempDir dir;
  FilesystemProbe probe({(dir.path() / "nope").string()}, std::make_shared<StatWatchdog>());
  auto r = probe.run(ctx_for(5s));
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.reason, Reason::io_error);
  EXPECT_NE(r.message.find("No such file or directory"), std::string::npos) << r.message;
  EXPECT_EQ(sample_value(r, "pacs_filesystem_stuck"), 0);
  EXPECT_EQ(find_sample(r, "pacs_filesystem_size_bytes"), nullptr);
}

TEST(FilesystemProbe, FileAsPathComponentIsIoError) {
  test::TempDir dir;
  auto file = dir.write("plain", "x");
  FilesystemProbe probe({(file / "sub").string()}, std::make_shared<StatWatchdog>());
  auto r = probe.run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::io_error);
  EXPECT_NE(r.message.find("Not a directory"), std::string::npos) << r.message;
}

// Permission denied cannot happen to root (the tests run as root here), so
// the check runs in a child process that dropped to uid/gid 65534 (nobody).
TEST(FilesystemProbe, PermissionDeniedIsIoError) {
  test::TempDir dir;
  fs::create_directories(dir.path() / "locked" / "inner");
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  fs::permissions(dir.path() / "locked", fs::perms::none);
  const std::string target = (dir.path() / "locked" / "inner").string();

  std::string got = test::run_as_nobody([&] {
    FilesystemProbe probe({target}, std::make_shared<StatWatchdog>());
    auto r = probe.run(test::ctx_for(5s));
    return std::string(to_string(r.reason)) + "|" + r.message;
  });
  fs::permissions(dir.path() / "locked", fs::perms::owner_all);
  EXPECT_EQ(got.substr(0, got.find('|')), "io_error") << got;
  EXPECT_NE(got.find("Permission denied"), std::string::npos) << got;
}

// A stat function that blocks on one path until released, like statfs on a
// hard NFS mount whose server went away.
struct BlockingStat {
  std::mutex mu;
  std::condition_variable cv;
  bool blocked = true;
  std::string stuck_path;
  std::atomic<int> calls_on_stuck{0};

  StatFn fn() {
    return [this](const std::string& path, struct statvfs& out) {
      if (path == stuck_path) {
        ++calls_on_stuck;
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return !blocked; });
      }
      return system_statvfs(path, out);
    };
  }
  void release() {
    {
      std::lock_guard lk(mu);
      blocked = false;
    }
    cv.notify_all();
  }
};

TEST(FilesystemWatchdog, BlockedStatTimesOutFailsFastThenRecovers) {
  test::TempDir stuck_dir, healthy_dir;
  auto blocker = std::make_shared<BlockingStat>();
  blocker->stuck_path = stuck_dir.path().string();
  auto wd = std::make_shared<StatWatchdog>(blocker->fn());
  FilesystemProbe stuck({stuck_dir.path().string()}, wd);
  FilesystemProbe healthy({healthy_dir.path().string()}, wd);

  // 1. The blocked call: the probe returns at its deadline, not later.
  auto t0 = Clock::now();
  auto r = stuck.run(ctx_for(300ms));
  auto took = Clock::now() - t0;
  EXPECT_EQ(r.reason, Reason::io_timeout) << r.message;
  EXPECT_EQ(sample_value(r, "pacs_filesystem_stuck"), 1);
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 2300ms) << "returned long after its deadline";
  EXPECT_TRUE(wd->stuck(stuck_dir.path().string()));

  // 2. Another filesystem probe keeps working, also from another thread,
  //    while the stuck call is still blocked.
  ProbeResult other;
  std::thread t([&] { other = healthy.run(ctx_for(5s)); });
  t.join();
  EXPECT_TRUE(other.success) << other.message;
  EXPECT_EQ(sample_value(other, "pacs_filesystem_stuck"), 0);

  // 3. Later runs (also a fresh instance, as /probe builds) fail fast and do
  //    not stat the path again: no new helper thread per run.
  FilesystemProbe fresh({stuck_dir.path().string()}, wd);
  for (auto* p : {&stuck, &fresh, &stuck}) {
    t0 = Clock::now();
    r = p->run(ctx_for(10s));
    EXPECT_LT(Clock::now() - t0, 5s) << "should not wait for a stuck path";
    EXPECT_EQ(r.reason, Reason::io_timeout);
    EXPECT_EQ(sample_value(r, "pacs_filesystem_stuck"), 1);
  }
  EXPECT_EQ(blocker->calls_on_stuck.load(), 1);
  EXPECT_EQ(wd->calls_in_flight(), 1);

  // 4. The stuck call returns: the path is stat-ed again and succeeds.
  blocker->release();
  auto end = Clock::now() + 10s;
  while (wd->calls_in_flight() != 0 && Clock::now() < end) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(wd->calls_in_flight(), 0);
  EXPECT_FALSE(wd->stuck(stuck_dir.path().string()));
  r = stuck.run(ctx_for(5s));
  EXPECT_TRUE(r.success) << r.message;
  EXPECT_EQ(sample_value(r, "pacs_filesystem_stuck"), 0);
  EXPECT_EQ(blocker->calls_on_stuck.load(), 2);
}

TEST(FilesystemWatchdog, ConcurrentCallersShareOneSlowCall) {
  // Two instances (scheduled + on-demand) on a slow but not stuck path: the
  // second joins the first call instead of reporting stuck or starting another.
  test::TempDir dir;
  auto blocker = std::make_shared<BlockingStat>();
  blocker->stuck_path = dir.path().string();
  auto wd = std::make_shared<StatWatchdog>(blocker->fn());
  FilesystemProbe a({dir.path().string()}, wd), b({dir.path().string()}, wd);
  ProbeResult ra, rb;
  std::thread ta([&] { ra = a.run(ctx_for(10s)); });
  auto end = Clock::now() + 5s;
  while (blocker->calls_on_stuck.load() == 0 && Clock::now() < end) std::this_thread::sleep_for(2ms);
  std::thread tb([&] { rb = b.run(ctx_for(10s)); });
  std::this_thread::sleep_for(50ms);
  blocker->release();
  ta.join();
  tb.join();
  EXPECT_TRUE(ra.success) << ra.message;
  EXPECT_TRUE(rb.success) << rb.message;
  EXPECT_EQ(blocker->calls_on_stuck.load(), 1);
}

TEST(FilesystemConfig, ParsesAndBuildsProbe) {
  test::TempDir dir;
  auto cfg = parse_config("[[filesystem]]\nname = \"store\"\npath = \"" + dir.path().string() + "\"\n", "t.toml");
  ASSERT_EQ(cfg->probes.size(), 1u);
  const auto& spec = cfg->probes[0];
  EXPECT_EQ(spec.probe, "filesystem");
  EXPECT_EQ(spec.target, "store");
  EXPECT_EQ(spec.reasons, filesystem_reasons());
  auto r = spec.make()->run(ctx_for(5s));
  EXPECT_TRUE(r.success) << r.message;
}

TEST(FilesystemConfig, RejectsBadTables) {
  test::expect_config_error("[[filesystem]]\nname = \"a\"\n", "t.toml:1: filesystem[0]: missing required key \"path\"");
  test::expect_config_error("[[filesystem]]\nname = \"a\"\npath = \"data\"\n",
                      "t.toml:3: filesystem[0].path: must be an absolute path");
  test::expect_config_error("[[filesystem]]\nname = \"a\"\npath = 5\n", "t.toml:3: filesystem[0].path: must be a string");
  test::expect_config_error("[[filesystem]]\nname = \"a\"\npath = \"/\"\nmount = \"/x\"\n",
                      "t.toml:4: filesystem[0].mount: unknown key");
}

TEST(FilesystemConfig, EmbeddedDefaultWatchesRoot) {
  auto cfg = default_config();
  auto* t = cfg->find_target("root");
  ASSERT_NE(t, nullptr) << default_config_text();
  EXPECT_EQ(t->kind, "filesystem");
  ASSERT_EQ(t->probes.size(), 1u);
  EXPECT_EQ(t->probes[0]->probe, "filesystem");
  auto r = t->probes[0]->make()->run(ctx_for(5s));
  EXPECT_TRUE(r.success) << r.message;
  EXPECT_EQ(find_sample(r, "pacs_filesystem_size_bytes")->labels[0].second, "/");
}

TEST(FilesystemConfig, SampleTomlParses) {
  std::ifstream in(std::string(PACS_SOURCE_DIR) + "/probes/filesystem/sample.toml");
  ASSERT_TRUE(in) << "probes/filesystem/sample.toml missing";
  std::stringstream ss;
  ss << in.rdbuf();
  auto cfg = parse_config(ss.str(), "probes/filesystem/sample.toml");
  ASSERT_GE(cfg->probes.size(), 1u);
  for (const auto& p : cfg->probes) EXPECT_EQ(p.probe, "filesystem");
}

}  // namespace
}  // namespace pacs::filesystem

namespace pacs::filesystem {
namespace {

// Lines as the kernel writes them: a rw root, a read-only bind *view* of a
// rw filesystem (what systemd's ProtectSystem=strict makes), an ext4 volume
// remounted read-only after errors, and a mount point with a space.
constexpr const char* kMountinfo =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "30 22 8:1 /srv/images /srv/images ro,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "31 22 8:17 / /mnt/archive rw,relatime shared:2 - ext4 /dev/sdb1 ro,errors=remount-ro\n"
    "32 22 0:50 / /mnt/with\\040space rw,relatime - nfs4 srv:/x rw,vers=4.2\n"
    "garbage line\n";

TEST(FilesystemReadonly, SuperblockDecidesNotTheMountView) {
  // Matched by device: the view is read-only, the superblock is not.
  EXPECT_EQ(superblock_readonly(kMountinfo, makedev(8, 1), "/srv/images/db"), false);
  EXPECT_EQ(superblock_readonly(kMountinfo, makedev(8, 17), "/mnt/archive"), true);
  // Anonymous device (btrfs/overlay): the longest containing mount point.
  EXPECT_EQ(superblock_readonly(kMountinfo, makedev(0, 99), "/mnt/archive/2026"), true);
  EXPECT_EQ(superblock_readonly(kMountinfo, makedev(0, 99), "/mnt/with space/x"), false);
  EXPECT_EQ(superblock_readonly(kMountinfo, makedev(0, 99), "/mnt/archived"), false);  // "/" matched, not /mnt/archive
  EXPECT_EQ(superblock_readonly("", makedev(8, 1), "/"), std::nullopt);
}

// Reproduces ProtectSystem=strict in a private mount namespace: a read-only
// bind view of a read-write filesystem. statvfs says read-only; the probe's
// stat function must not.
TEST(FilesystemReadonly, ReadOnlyBindViewIsNotReportedReadOnly) {
  test::TempDir dir;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (unshare(CLONE_NEWNS) != 0) _exit(77);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(77);
    const char* p = dir.path().c_str();
    if (mount(p, p, nullptr, MS_BIND, nullptr) != 0) _exit(77);
    if (mount(nullptr, p, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) _exit(77);
    struct statvfs raw {};
    if (::statvfs(p, &raw) != 0 || !(raw.f_flag & ST_RDONLY)) _exit(3);  // the view is read-only...
    struct statvfs ours {};
    if (system_statvfs(p, ours) != 0) _exit(4);
    _exit((ours.f_flag & ST_RDONLY) ? 5 : 0);  // ...but the filesystem is not
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "no permission for a private mount namespace here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "3: bind not read-only, 4: stat failed, 5: view reported as read-only";
}

}  // namespace
}  // namespace pacs::filesystem
