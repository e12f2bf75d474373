// Ingest counters against a real Orthanc (Debian package) on 127.0.0.1:
// history stored before the first run is not counted; the counters rise by
// exactly the instances and studies stored during the test (re-sending an
// instance Orthanc already has adds nothing); a replaced Orthanc database
// is noticed and counting goes on; a corrupt or unwritable state file is
// handled as documented; and the real agent binary keeps the counters over
// a restart without counting a change twice or missing the ones stored
// while it was down.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "probes/log.h"
#include "probes/queue/orthanc_changes.h"
#include "probes/queue/queue.h"
#include "tests/support/probe_testing.h"
#include "tests/support/support.h"

namespace pacs::queue {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::ctx_for;
using test::sample_value;

class CurlEnv : public ::testing::Environment {
 public:
  void SetUp() override {
    Logger log(LogLevel::error);
    kind().init(log);
  }
  void TearDown() override { kind().shutdown(); }
};
const auto* const kCurlEnv = ::testing::AddGlobalTestEnvironment(new CurlEnv);

std::mutex g_lines_mu;
std::vector<std::string> g_lines;
Logger& test_logger() {
  static Logger log(LogLevel::debug, [](std::string_view line) {
    std::lock_guard lk(g_lines_mu);
    g_lines.emplace_back(line);
  });
  return log;
}
bool logged(const std::string& needle) {
  std::lock_guard lk(g_lines_mu);
  for (const auto& l : g_lines)
    if (l.find(needle) != std::string::npos) return true;
  return false;
}

// Stores studies in Orthanc: `instances` instances of one new study each call.
struct Uploader {
  explicit Uploader(test::Orthanc& o) : orthanc(o) {}
  test::Orthanc& orthanc;
  test::TempDir tmp;
  int files = 0, studies = 0;
  std::vector<fs::path> sent;
  void study(int instances, const std::string& modality = "CT") {
    std::string uid = "1.2.826.0.1.3680043.2.1143.88." + std::to_string(::getpid()) + "." + std::to_string(++studies);
    std::string series = uid + ".1";
    for (int i = 1; i <= instances; ++i) {
      test::DicomFileSpec spec;
      spec.study_date = "20240131";
      spec.modality = modality;
      spec.study_uid = uid;
      spec.series_uid = series;
      spec.instance_number = i;
      auto f = test::make_dicom_file(tmp / ("f" + std::to_string(++files) + ".dcm"), spec);
      ASSERT_EQ(orthanc.upload(f), 200) << orthanc.log();
      sent.push_back(f);
    }
  }
};

struct Counters {
  double instances = -1, studies = -1, resets = -1;
};

ProbeResult run(OrthancJobsProbe& p) {
  ProbeContext ctx = ctx_for(10s);
  ctx.log = &test_logger();
  return p.run(ctx);
}

Counters counters(const ProbeResult& r) {
  Counters c;
  for (const auto& s : r.samples) {
    if (s.name == "pacs_archive_received_instances_total") c.instances = s.value;
    if (s.name == "pacs_archive_received_studies_total") c.studies = s.value;
    if (s.name == "pacs_archive_change_log_resets_total") c.resets = s.value;
    if (s.name.find("_total") != std::string::npos) {
      EXPECT_TRUE(s.counter) << s.name;
    }
  }
  return c;
}

std::string describe(const ProbeResult& r) {
  std::string s = "success=" + std::to_string(r.success) + " reason=" + std::string(to_string(r.reason)) +
                  " message=\"" + r.message + "\" samples:";
  for (const auto& x : r.samples) s += " " + x.name + "=" + std::to_string(x.value);
  return s;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(OrthancIngest, CountsExactlyWhatIsStoredAfterTheFirstRun) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  test::Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  Uploader up(orthanc);
  up.study(3);  // history: before the agent ever looked
  up.study(1);

  test::TempDir state;
  auto file = (state / "o.json").string();
  auto follower = std::make_shared<ChangeFollower>(file);
  OrthancJobsProbe probe(orthanc.url(), {}, follower);
  auto r = run(probe);
  ASSERT_TRUE(r.success) << describe(r);
  auto c = counters(r);
  EXPECT_EQ(c.instances, 0);  // history is not new ingest
  EXPECT_EQ(c.studies, 0);
  EXPECT_EQ(c.resets, 0);
  ASSERT_TRUE(fs::exists(file));

  up.study(3);
  up.study(2, "MR");
  up.study(1, "US");
  ASSERT_EQ(orthanc.upload(up.sent.front()), 200);  // already stored: no change
  r = run(probe);
  ASSERT_TRUE(r.success) << describe(r);
  c = counters(r);
  EXPECT_EQ(c.instances, 6);
  EXPECT_EQ(c.studies, 3);

  // A second instance of this target (an on-demand /probe) shares the
  // follower: nothing is counted twice.
  OrthancJobsProbe twin(orthanc.url(), {}, follower);
  r = run(twin);
  EXPECT_EQ(counters(r).instances, 6);
  r = run(probe);
  EXPECT_EQ(counters(r).instances, 6);

  // The state file says the same; a fresh follower (agent restart) picks it up.
  std::string err;
  auto st = parse_change_state(read_file(file), err);
  ASSERT_TRUE(st) << err;
  EXPECT_EQ(st->instances, 6u);
  EXPECT_EQ(st->studies, 3u);
  EXPECT_EQ(st->url, orthanc.url());
  up.study(2);
  OrthancJobsProbe restarted(orthanc.url(), {}, std::make_shared<ChangeFollower>(file));
  r = run(restarted);
  ASSERT_TRUE(r.success) << describe(r);
  EXPECT_EQ(counters(r).instances, 8);
  EXPECT_EQ(counters(r).studies, 4);
}

TEST(OrthancIngest, BacklogsArePagedAndCaughtUpOverRuns) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  test::Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  test::TempDir state;
  // 5 changes per request, 4 requests per run: 20 changes per run at most.
  OrthancJobsProbe probe(orthanc.url(), {}, std::make_shared<ChangeFollower>((state / "o.json").string(), 5, 4));
  ASSERT_TRUE(run(probe).success);
  // 3 studies of 10 instances: 30 NewInstance, 3 NewSeries, 3 NewStudy, 1
  // NewPatient and (after StableAge) the Stable* changes: over 37 changes.
  Uploader up(orthanc);
  for (int i = 0; i < 3; ++i) up.study(10);
  auto r = run(probe);
  ASSERT_TRUE(r.success) << describe(r);
  auto c = counters(r);
  EXPECT_GT(c.instances, 0);
  EXPECT_LT(c.instances, 30);  // not all in one run: the rest waits
  for (int i = 0; i < 5 && counters(r).instances < 30; ++i) r = run(probe);
  EXPECT_EQ(counters(r).instances, 30);
  EXPECT_EQ(counters(r).studies, 3);
  r = run(probe);
  EXPECT_EQ(counters(r).instances, 30);
}

TEST(OrthancIngest, ReplacedDatabaseIsNoticedAndCountingGoesOn) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  test::Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  Uploader up(orthanc);
  test::TempDir state;
  OrthancJobsProbe probe(orthanc.url(), {}, std::make_shared<ChangeFollower>((state / "o.json").string()));
  ASSERT_TRUE(run(probe).success);
  for (int i = 0; i < 4; ++i) up.study(2);
  auto r = run(probe);
  EXPECT_EQ(counters(r).instances, 8);

  // Clearing the log keeps Orthanc's sequence numbers going: not a reset.
  ASSERT_EQ(test::http_request(orthanc.http_port(), "DELETE", "/changes").status, 200);
  r = run(probe);
  ASSERT_TRUE(r.success) << describe(r);
  EXPECT_EQ(counters(r).resets, 0);
  up.study(1);
  r = run(probe);
  EXPECT_EQ(counters(r).instances, 9);

  // A new, empty database (restored elsewhere, or wiped): numbers restart.
  orthanc.stop();
  fs::remove_all(orthanc.dir() / "db");
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  up.study(1);  // lands in the new database before the agent notices: history
  r = run(probe);
  ASSERT_TRUE(r.success) << describe(r);
  EXPECT_EQ(counters(r).resets, 1);
  EXPECT_EQ(counters(r).instances, 9);  // the counters go on, they never go back
  EXPECT_TRUE(logged("change log is behind the last change counted"));
  up.study(2);
  r = run(probe);
  EXPECT_EQ(counters(r).instances, 11);
  EXPECT_EQ(counters(r).studies, 6);
}

TEST(OrthancIngest, CorruptStateFileRestartsAtTheLogEndWithALogLine) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  test::Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  Uploader up(orthanc);
  up.study(2);
  test::TempDir state;
  auto file = state.write("o.json", "{\"format\":1, \"url\": trunc");
  OrthancJobsProbe probe(orthanc.url(), {}, std::make_shared<ChangeFollower>(file.string()));
  auto r = run(probe);
  ASSERT_TRUE(r.success) << describe(r);
  EXPECT_EQ(counters(r).instances, 0);
  EXPECT_TRUE(logged("the state file is corrupt"));
  EXPECT_TRUE(logged("error=\"not valid JSON\""));
  std::string err;
  EXPECT_TRUE(parse_change_state(read_file(file), err)) << "not rewritten: " << err;
  up.study(1);
  EXPECT_EQ(counters(run(probe)).instances, 1);
}

TEST(OrthancIngest, UnwritableStateFileFailsTheRunButKeepsCounting) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  test::Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  test::TempDir state;
  auto file = (state / "no-such-dir" / "o.json").string();
  OrthancJobsProbe probe(orthanc.url(), {}, std::make_shared<ChangeFollower>(file));
  auto r = run(probe);
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.reason, Reason::io_error) << describe(r);
  EXPECT_EQ(r.message, "cannot write the ingest counter state file " + file +
                           ": No such file or directory (after a restart the counters would count these changes "
                           "again)");
  EXPECT_EQ(counters(r).instances, 0);
  EXPECT_GE(sample_value(r, "pacs_archive_instances"), 0);  // the rest of the run is there
  Uploader up(orthanc);
  up.study(3);
  r = run(probe);
  EXPECT_EQ(r.reason, Reason::io_error);
  EXPECT_EQ(counters(r).instances, 3);

  // Orthanc down: the counters are still exported (with the HTTP reason).
  orthanc.stop();
  r = run(probe);
  EXPECT_EQ(r.reason, Reason::connection_refused) << describe(r);
  EXPECT_EQ(counters(r).instances, 3);
}

// The real binary, restarted: the counters continue from the state file,
// changes stored while the agent was down are counted once.
struct Agent {
  Agent(test::TempDir& d, fs::path c) : dir(d), config(std::move(c)) {}
  test::TempDir& dir;
  fs::path config;
  int port = test::free_port();
  std::unique_ptr<test::Process> proc;
  void start() {
    proc = std::make_unique<test::Process>(
        std::vector<std::string>{test::agent_binary(), "--config.file=" + config.string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port)},
        dir / ("agent-" + std::to_string(port) + ".log"));
    ASSERT_TRUE(test::wait_for_port(port, 20s)) << proc->log();
  }
  std::optional<double> value(const std::string& metric) {
    auto m = test::http_get(port, "/metrics").body;
    return test::metric_value(m, metric + "{probe=\"queue_orthanc\",target=\"orthanc\"}");
  }
  // Waits until `metric` equals `want`, then keeps watching for a few more
  // runs to see it does not go past it.
  ::testing::AssertionResult settles_at(const std::string& metric, double want) {
    auto end = Clock::now() + 60s;
    std::optional<double> v;
    while (Clock::now() < end) {
      v = value(metric);
      if (v && *v == want) break;
      std::this_thread::sleep_for(100ms);
    }
    if (!v || *v != want) {
      return ::testing::AssertionFailure() << metric << " = " << (v ? std::to_string(*v) : "absent") << ", want "
                                           << want << "\n" << proc->log();
    }
    auto runs_now = runs();
    while (runs() < runs_now + 3 && Clock::now() < end + 30s) std::this_thread::sleep_for(100ms);
    v = value(metric);
    if (!v || *v != want) return ::testing::AssertionFailure() << metric << " moved on to " << v.value_or(-1);
    return ::testing::AssertionSuccess();
  }
  double runs() {
    return value("pacs_probe_runs_total").value_or(0);
  }
};

TEST(OrthancIngest, AgentRestartNeitherDoubleCountsNorMisses) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  test::Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  Uploader up(orthanc);
  up.study(5);  // history
  test::TempDir dir;
  auto state_file = dir / "state" / "orthanc.json";
  fs::create_directories(state_file.parent_path());
  Agent agent(dir, dir.write("agent.toml", "[[queue]]\nname = \"orthanc\"\ntype = \"orthanc\"\nurl = \"" +
                                               orthanc.url() + "\"\nstate_file = \"" + state_file.string() +
                                               "\"\ninterval = \"1s\"\ntimeout = \"1s\"\n"));
  agent.start();
  ASSERT_TRUE(agent.settles_at("pacs_archive_received_instances_total", 0));
  auto text = test::http_get(agent.port, "/metrics").body;
  EXPECT_NE(text.find("# TYPE pacs_archive_received_instances_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE pacs_archive_received_studies_total counter"), std::string::npos);

  up.study(4);
  up.study(3);
  ASSERT_TRUE(agent.settles_at("pacs_archive_received_instances_total", 7));
  ASSERT_TRUE(agent.settles_at("pacs_archive_received_studies_total", 2));

  agent.proc->stop();  // SIGTERM, as systemd does
  up.study(2);         // while the agent is down
  up.study(1);
  agent.port = test::free_port();
  agent.start();
  ASSERT_TRUE(agent.settles_at("pacs_archive_received_instances_total", 10));
  ASSERT_TRUE(agent.settles_at("pacs_archive_received_studies_total", 4));

  // And once more, killed hard (no shutdown at all): the state written
  // after the last run with changes is what counts.
  up.study(2);
  ASSERT_TRUE(agent.settles_at("pacs_archive_received_instances_total", 12));
  agent.proc->kill_signal(9);
  agent.proc->wait_exit(10s);
  agent.port = test::free_port();
  agent.start();
  ASSERT_TRUE(agent.settles_at("pacs_archive_received_instances_total", 12));
  EXPECT_EQ(agent.value("pacs_archive_change_log_resets_total"), 0);
}

}  // namespace
}  // namespace pacs::queue
