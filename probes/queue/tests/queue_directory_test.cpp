// Spool directory probe: exact counts from a fixture folder with known
// sizes and mtimes, pattern / recursion / depth / hidden files, errors,
// deadline and shutdown (partial scans), and config parsing.
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "agent/config.h"
#include "probes/queue/queue.h"
#include "tests/support/dead_mount.h"
#include "tests/support/probe_testing.h"
#include "tests/support/support.h"

namespace pacs::queue {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using test::ctx_for;
using test::sample_value;


bool has(const ProbeResult& r, const std::string& name) {
  for (const auto& s : r.samples)
    if (s.name == name) return true;
  return false;
}

// Writes `size` bytes and sets atime/mtime to now - age_seconds.
void make_file(const fs::path& p, size_t size, long age_seconds) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << std::string(size, 'x');
  utimbuf t;
  t.actime = t.modtime = ::time(nullptr) - age_seconds;
  ASSERT_EQ(::utime(p.c_str(), &t), 0) << p;
}

SpoolOptions at(const fs::path& p) {
  SpoolOptions o;
  o.path = p.string();
  return o;
}

ProbeResult run(SpoolOptions o, Duration timeout = 10s) { return SpoolDirectoryProbe(std::move(o)).run(ctx_for(timeout)); }

TEST(SpoolDirectory, ExactCountsBytesAndOldestAge) {
  test::TempDir d;
  make_file(d / "a.dcm", 10, 100);
  make_file(d / "b.dcm", 2000, 3600);
  make_file(d / "c.tmp", 5, 50);
  make_file(d / ".partial.dcm", 999, 7200);  // hidden: skipped by default
  make_file(d / "sub" / "deep.dcm", 77, 9999);  // not recursive: skipped
  fs::create_symlink(d / "a.dcm", d / "link.dcm");  // symlinks are not items
  ASSERT_EQ(::mkfifo((d / "fifo").c_str(), 0600), 0);

  auto r = run(at(d.path()));
  ASSERT_TRUE(r.success) << r.message;
  EXPECT_EQ(sample_value(r, "pacs_queue_items"), 3);
  EXPECT_EQ(sample_value(r, "pacs_queue_bytes"), 2015);
  EXPECT_NEAR(sample_value(r, "pacs_queue_oldest_item_age_seconds"), 3600, 3);
  EXPECT_EQ(sample_value(r, "pacs_queue_scan_partial"), 0);
  for (const auto& s : r.samples) EXPECT_TRUE(s.labels.empty()) << s.name;

  SpoolOptions hidden = at(d.path());
  hidden.include_hidden = true;
  r = run(hidden);
  EXPECT_EQ(sample_value(r, "pacs_queue_items"), 4);
  EXPECT_EQ(sample_value(r, "pacs_queue_bytes"), 3014);
  EXPECT_NEAR(sample_value(r, "pacs_queue_oldest_item_age_seconds"), 7200, 3);
}

TEST(SpoolDirectory, EmptyFolderHasZeroAge) {
  test::TempDir d;
  auto r = run(at(d.path()));
  ASSERT_TRUE(r.success) << r.message;
  EXPECT_EQ(sample_value(r, "pacs_queue_items"), 0);
  EXPECT_EQ(sample_value(r, "pacs_queue_bytes"), 0);
  EXPECT_EQ(sample_value(r, "pacs_queue_oldest_item_age_seconds"), 0);
}

TEST(SpoolDirectory, PatternRecursionAndDepth) {
  test::TempDir d;
  make_file(d / "top.dcm", 1, 10);
  make_file(d / "top.txt", 2, 20);
  make_file(d / "l1" / "one.dcm", 4, 30);
  make_file(d / "l1" / "l2" / "two.dcm", 8, 40);
  make_file(d / "l1" / "l2" / "l3" / "three.dcm", 16, 500);
  make_file(d / ".hidden" / "h.dcm", 32, 60);

  SpoolOptions o = at(d.path());
  o.pattern = "*.dcm";
  auto r = run(o);
  EXPECT_EQ(sample_value(r, "pacs_queue_items"), 1);
  EXPECT_EQ(sample_value(r, "pacs_queue_bytes"), 1);

  o.recursive = true;
  r = run(o);
  EXPECT_EQ(sample_value(r, "pacs_queue_items"), 4);
  EXPECT_EQ(sample_value(r, "pacs_queue_bytes"), 1 + 4 + 8 + 16);
  EXPECT_NEAR(sample_value(r, "pacs_queue_oldest_item_age_seconds"), 500, 3);

  o.max_depth = 1;
  r = run(o);
  EXPECT_EQ(sample_value(r, "pacs_queue_items"), 2);
  EXPECT_EQ(sample_value(r, "pacs_queue_bytes"), 5);

  o.max_depth = 2;
  o.pattern.clear();
  r = run(o);
  EXPECT_EQ(sample_value(r, "pacs_queue_items"), 4);  // top.dcm top.txt one.dcm two.dcm
  EXPECT_EQ(sample_value(r, "pacs_queue_bytes"), 1 + 2 + 4 + 8);

  o.max_depth = 16;
  o.include_hidden = true;
  r = run(o);
  EXPECT_EQ(sample_value(r, "pacs_queue_items"), 6);
}

TEST(SpoolDirectory, MissingOrNotAFolderIsIoError) {
  test::TempDir d;
  auto r = run(at((d / "missing")));
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.reason, Reason::io_error);
  EXPECT_NE(r.message.find("No such file or directory"), std::string::npos) << r.message;
  EXPECT_FALSE(has(r, "pacs_queue_items"));

  auto f = d.write("file", "x");
  r = run(at(f));
  EXPECT_EQ(r.reason, Reason::io_error);
  EXPECT_NE(r.message.find("Not a directory"), std::string::npos) << r.message;
}


TEST(SpoolDirectory, UnreadableFolderIsIoError) {
  test::TempDir d;
  make_file(d / "spool" / "a", 1, 1);
  fs::permissions(d.path(), fs::perms::owner_all | fs::perms::others_exec | fs::perms::group_exec);
  fs::permissions(d / "spool", fs::perms::none);
  std::string top = test::run_as_nobody([&] {
    auto r = run(at(d / "spool"));
    return std::string(to_string(r.reason)) + "|" + r.message;
  });
  fs::permissions(d / "spool", fs::perms::owner_all);
  EXPECT_EQ(top, "io_error|scanning " + (d / "spool").string() + ": Permission denied");
}

// Routers and `storescp --sort-on-patientname` name folders and files after
// patients and studies: an entry that cannot be read is counted, with its
// errno, and never named.
TEST(SpoolDirectory, UnreadableEntriesNamedAfterPatientsAreCountedNeverNamed) {
  test::TempDir d;
  const std::string patient_dir = "DOE^JOHN_19700101_PHICANARY";
  const std::string study_dir = "SMITH^JANE_PHICANARY_1.2.840.113619.2.55";
  const std::string study_file = "1.2.840.113619.2.55.3.PHICANARY.dcm";
  make_file(d / "spool" / "ok.dcm", 1, 1);
  make_file(d / "spool" / patient_dir / "img.dcm", 1, 1);
  make_file(d / "spool" / study_dir / study_file, 1, 1);
  make_file(d / "spool" / study_dir / ("2." + study_file), 1, 1);
  fs::permissions(d.path(), fs::perms::owner_all | fs::perms::others_exec | fs::perms::group_exec);
  fs::permissions(d / "spool", fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  SpoolOptions o = at(d / "spool");
  o.recursive = true;

  // Control: readable, the scan walks into both patient-named folders.
  auto all = run(o);
  ASSERT_TRUE(all.success) << all.message;
  EXPECT_EQ(sample_value(all, "pacs_queue_items"), 4) << "control: the patient-named entries were not scanned";

  // Locked: no entry into the first; the second may be listed (read) but not
  // searched, so its file names ARE read by readdir and cannot be stat-ed.
  fs::permissions(d / "spool" / patient_dir, fs::perms::none);
  fs::permissions(d / "spool" / study_dir, fs::perms::owner_all | fs::perms::others_read);
  std::string seen = test::run_as_nobody([&] {
    auto r = run(o);
    std::string out = std::string(to_string(r.reason)) + "|" + r.message;
    for (const auto& s : r.samples) {
      out += "|" + s.name + "=" + std::to_string(static_cast<long>(s.value));
      for (const auto& [k, v] : s.labels) out += "," + k + "=" + v;
    }
    return out;
  });
  fs::permissions(d / "spool" / patient_dir, fs::perms::owner_all);
  fs::permissions(d / "spool" / study_dir, fs::perms::owner_all);
  // Control: the scan did meet the three locked entries (the folder it could
  // not open and the two file names it listed but could not stat).
  EXPECT_EQ(seen.rfind("io_error|scanning " + (d / "spool").string() +
                           ": 3 entries could not be read (first error: Permission denied)",
                       0),
            0u)
      << seen;
  EXPECT_NE(seen.find("|pacs_queue_items=1"), std::string::npos) << seen;  // what could be counted
  for (const std::string& phi : {patient_dir, study_dir, study_file, std::string("PHICANARY"), std::string("DOE^"),
                                 std::string("1.2.840")}) {
    EXPECT_EQ(seen.find(phi), std::string::npos) << phi << " in " << seen;
  }
}

// A spool on a dead mount: the run ends at its deadline with io_timeout and
// the path is marked stuck; later runs fail at once instead of piling up
// threads; when the mount comes back, scanning resumes.
TEST(SpoolDirectory, HungMountEndsAtTheDeadlineAndIsNotScannedAgainWhileStuck) {
  test::TempDir d;
  test::DeadMount dead(d / "nfs");
  PACS_REQUIRE_DEAD_MOUNT(dead);
  SpoolOptions o = at(dead.path());
  auto r = run(o, 300ms);  // without a watchdog this never returns (ctest's timeout fails it)
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.reason, Reason::io_timeout);
  EXPECT_NE(r.message.find("did not return before the deadline"), std::string::npos) << r.message;
  EXPECT_EQ(sample_value(r, "pacs_queue_scan_partial"), 1);
  EXPECT_FALSE(has(r, "pacs_queue_items"));
  EXPECT_TRUE(spool_scan_stuck(o.path));

  r = run(o, 300ms);
  EXPECT_EQ(r.reason, Reason::io_timeout);
  EXPECT_NE(r.message.find("from an earlier run has still not returned"), std::string::npos) << r.message;

  // Shutdown: a run waiting on a (new) stuck scan returns when told to stop.
  SpoolOptions nested = at(d.path());
  nested.recursive = true;
  std::atomic<bool> stop{false};
  ProbeContext c = test::ctx_for(1h);
  c.stop = &stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop = true;
  });
  r = SpoolDirectoryProbe(nested).run(c);  // the spool is fine, one subfolder is the dead mount
  stopper.join();
  EXPECT_EQ(r.reason, Reason::io_timeout) << r.message;
  EXPECT_TRUE(spool_scan_stuck(nested.path));

  dead.release();  // the server "comes back" (the kernel aborts the calls)
  auto until = Clock::now() + 30s;
  while ((spool_scan_stuck(o.path) || spool_scan_stuck(nested.path)) && Clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_FALSE(spool_scan_stuck(o.path));
  EXPECT_FALSE(spool_scan_stuck(nested.path));
  r = run(nested);
  EXPECT_TRUE(r.success) << r.message;
}

TEST(SpoolDirectory, BigFolderStatedInParallelStillExact) {
  // Above the size where the scan splits its fstatat calls over two threads.
  test::TempDir d;
  std::uint64_t bytes = 0;
  for (int i = 0; i < 6000; ++i) {
    size_t size = static_cast<size_t>(i % 5);
    make_file(d / ("f" + std::to_string(i)), size, i == 4321 ? 86400 : 60);
    bytes += size;
  }
  make_file(d / "skip.tmp", 100, 999999);
  SpoolOptions o = at(d.path());
  o.pattern = "f*";
  auto r = run(o);
  ASSERT_TRUE(r.success) << r.message;
  EXPECT_EQ(sample_value(r, "pacs_queue_items"), 6000);
  EXPECT_EQ(sample_value(r, "pacs_queue_bytes"), static_cast<double>(bytes));
  EXPECT_NEAR(sample_value(r, "pacs_queue_oldest_item_age_seconds"), 86400, 3);
}

TEST(SpoolDirectory, DeadlineGivesPartialLowerBound) {
  test::TempDir d;
  for (int i = 0; i < 1000; ++i) make_file(d / ("f" + std::to_string(i)), 1, 10);
  ProbeContext c;
  c.deadline = Clock::now();  // already expired: the scan stops at its first check
  auto r = SpoolDirectoryProbe(at(d.path())).run(c);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.reason, Reason::io_timeout);
  EXPECT_EQ(sample_value(r, "pacs_queue_scan_partial"), 1);
  EXPECT_LT(sample_value(r, "pacs_queue_items"), 1000);
  EXPECT_NE(r.message.find("lower bound"), std::string::npos);

  std::atomic<bool> stop{true};
  c = ctx_for(10s);
  c.stop = &stop;
  r = SpoolDirectoryProbe(at(d.path())).run(c);
  EXPECT_EQ(sample_value(r, "pacs_queue_scan_partial"), 1);
  EXPECT_NE(r.message.find("shutdown"), std::string::npos) << r.message;

  r = run(at(d.path()));
  EXPECT_TRUE(r.success);
  EXPECT_EQ(sample_value(r, "pacs_queue_items"), 1000);
  EXPECT_EQ(sample_value(r, "pacs_queue_scan_partial"), 0);
}

TEST(QueueConfig, DirectoryTable) {
  test::TempDir d;
  make_file(d / "x" / "a.dcm", 3, 5);
  auto cfg = parse_config("[[queue]]\nname = \"in\"\ntype = \"directory\"\npath = \"" + d.path().string() +
                              "\"\npattern = \"*.dcm\"\nrecursive = true\nmax_depth = 2\ninclude_hidden = false\n",
                          "t.toml");
  ASSERT_EQ(cfg->probes.size(), 1u);
  EXPECT_EQ(cfg->probes[0].probe, "queue_directory");
  EXPECT_EQ(cfg->probes[0].reasons, directory_reasons());
  auto r = cfg->probes[0].make()->run(ctx_for(5s));
  EXPECT_EQ(sample_value(r, "pacs_queue_items"), 1);

  const std::string head = "[[queue]]\nname = \"q\"\n";
  test::expect_config_error(head, "t.toml:1: queue[0]: missing required key \"type\"");
  test::expect_config_error(head + "type = \"nfs\"\n",
                      "t.toml:3: queue[0].type: unknown queue type \"nfs\" (known: directory, orthanc, dcm4chee, "
                      "http_json)");
  test::expect_config_error(head + "type = \"directory\"\npath = \"spool\"\n",
                      "t.toml:4: queue[0].path: must be an absolute path");
  test::expect_config_error(head + "type = \"directory\"\npath = \"/s\"\nmax_depth = 3\n",
                      "t.toml:5: queue[0].max_depth: only applies with recursive = true");
  test::expect_config_error(head + "type = \"directory\"\npath = \"/s\"\nrecursive = true\nmax_depth = 0\n",
                      "t.toml:6: queue[0].max_depth: must be 1..64");
  test::expect_config_error(head + "type = \"directory\"\npath = \"/s\"\npattern = \"a/*.dcm\"\n",
                      "t.toml:5: queue[0].pattern: matches file names only; must not contain '/'");
  test::expect_config_error(head + "type = \"directory\"\npath = \"/s\"\nurl = \"http://x\"\n",
                      "t.toml:5: queue[0].url: unknown key");
}

}  // namespace
}  // namespace pacs::queue
