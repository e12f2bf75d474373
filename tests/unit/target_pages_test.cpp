// What an on-call admin reads: `/probe?...&debug=true` transcripts, the
// per-target history behind `/target?name=NAME`, and the figures on the
// status page. The agent runs in-process behind the real HTTP server on
// 127.0.0.1; its peers are real (a scripted HTTP server, folders, volumes).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "agent/agent.h"
#include "agent/figures.h"
#include "agent/status_page.h"
#include "agent/target_history.h"
#include "probes/registry.h"
#include "tests/support/http_test_server.h"
#include "tests/support/support.h"

namespace pacs {
namespace {
using namespace std::chrono_literals;
using test::http_request;
using test::LoopbackHttpServer;
using test::LoopbackReply;
using test::LoopbackRequest;
using test::TempDir;

// Patient data the peers hold; none of it may reach a transcript or a page.
constexpr const char* kCanaryName = "CANARY^PATIENT";
constexpr const char* kCanaryId = "PID-CANARY-4711";

struct AgentFixture {
  explicit AgentFixture(const std::string& toml)
      : log(LogLevel::error, [](std::string_view) {}),
        agent(log, {}, parse_config(toml, "t.toml")),
        server(ioc, log, [this](const HttpRequest& r, Respond respond) { agent.handle(r, std::move(respond)); }) {
    server.listen("127.0.0.1:0");
    port = server.bound_ports().at(0);
    thread = std::thread([this] { ioc.run(); });
    agent.start();
  }
  ~AgentFixture() {
    agent.stop();
    boost::asio::post(ioc, [this] { server.stop(); });
    ioc.stop();
    thread.join();
  }
  test::HttpResponse get(const std::string& target) { return http_request(port, "GET", target); }
  // Polls `target` until its body satisfies `pred`; returns the last body.
  std::string wait_for(const std::string& target, const std::function<bool(const std::string&)>& pred,
                       std::chrono::seconds limit = 30s) {
    auto end = std::chrono::steady_clock::now() + limit;
    std::string body;
    while (std::chrono::steady_clock::now() < end) {
      body = get(target).body;
      if (pred(body)) return body;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "timed out waiting on " << target << "; last body:\n" << body;
    return body;
  }

  boost::asio::io_context ioc{1};
  Logger log;
  Agent agent;
  HttpServer server;
  int port = 0;
  std::thread thread;
};

bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

void expect_no_canary(const std::string& text) {
  for (const char* c : {kCanaryName, kCanaryId, "CANARY%5EPATIENT", "Doe"}) {
    EXPECT_FALSE(has(text, c)) << c << " leaked into:\n" << text;
  }
}

// The part of a debug answer after the metrics.
std::string transcript_part(const std::string& body) {
  auto p = body.find("\n\nTranscript of ");
  return p == std::string::npos ? std::string() : body.substr(p);
}

// ---- /probe?debug=true --------------------------------------------------------------------------

TEST(ProbeDebug, HttpSuccessShowsRequestStatusAndTimingsAfterTheMetrics) {
  LoopbackHttpServer srv([](const LoopbackRequest&) {
    return LoopbackReply::json(std::string(R"({"depth":7,"PatientName":")") + kCanaryName + "\"}");
  });
  AgentFixture a("[agent]\ninterval = \"1h\"\n\n[[queue]]\nname = \"json\"\ntype = \"http_json\"\nurl = \"" +
                 srv.url("/q?PatientID=") + kCanaryId + "\"\nvalues = [{ name = \"depth\", pointer = \"/depth\" }]\n");
  auto r = a.get("/probe?target=json&debug=true");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "text/plain; charset=utf-8");
  EXPECT_EQ(r.body.rfind("Metrics that would have been returned:\n", 0), 0u) << r.body;
  auto metrics_end = r.body.find("\n\nTranscript of queue_http_json for target json (deadline ");
  ASSERT_NE(metrics_end, std::string::npos) << r.body;
  EXPECT_LT(r.body.find("probe_success 1"), metrics_end);
  EXPECT_LT(r.body.find("pacs_queue_json_value{"), metrics_end);
  auto t = transcript_part(r.body);
  EXPECT_TRUE(std::regex_search(t, std::regex(R"(\+ +[0-9.]+ ms  GET  http://127\.0\.0\.1:[0-9]+/q\?\.\.\.\n)"))) << t;
  EXPECT_TRUE(std::regex_search(t, std::regex(R"(connected  TCP connect [0-9.]+ ms)"))) << t;
  EXPECT_TRUE(std::regex_search(t, std::regex(R"(HTTP 200  first byte [0-9.]+ ms, total [0-9.]+ ms, [0-9]+ bytes)"))) << t;
  EXPECT_TRUE(has(t, "  result  success\n")) << t;
  // Control: the canary reached the peer (query) and came back (body).
  ASSERT_FALSE(srv.requests().empty());
  EXPECT_TRUE(has(srv.requests()[0].target, kCanaryId));
  expect_no_canary(r.body);
}

TEST(ProbeDebug, Http401TranscriptNamesTheStatusWithoutTheBody) {
  LoopbackHttpServer srv([](const LoopbackRequest&) {
    return LoopbackReply::json(std::string(R"({"error":"who are you","PatientName":")") + kCanaryName + "\"}", 401);
  });
  AgentFixture a("[agent]\ninterval = \"1h\"\n\n[[queue]]\nname = \"jobs\"\ntype = \"orthanc\"\nurl = \"" +
                 srv.url("") + "\"\n");
  auto r = a.get("/probe?target=jobs&check=orthanc&debug=true");
  ASSERT_EQ(r.status, 200);
  EXPECT_TRUE(has(r.body, "probe_success 0"));
  EXPECT_TRUE(has(r.body, "pacs_probe_result_info{probe=\"queue_orthanc\",target=\"jobs\",reason=\"http_status\"} 1"))
      << r.body;
  auto t = transcript_part(r.body);
  EXPECT_TRUE(std::regex_search(t, std::regex(R"(  GET  http://127\.0\.0\.1:[0-9]+/jobs)"))) << t;
  EXPECT_TRUE(std::regex_search(t, std::regex(R"(  HTTP 401  first byte [0-9.]+ ms)"))) << t;
  EXPECT_TRUE(std::regex_search(t, std::regex(R"(  failed  http_status: GET http://127\.0\.0\.1:[0-9]+/jobs\?\.\.\.: HTTP 401)")))
      << t;
  ASSERT_FALSE(srv.requests().empty());  // control: the body with the canary was served
  expect_no_canary(r.body);
}

TEST(ProbeDebug, ResetMidRequestIsConnectionResetInTheTranscript) {
  LoopbackHttpServer srv([](const LoopbackRequest&) { return LoopbackReply::reset_after(); });
  AgentFixture a("[agent]\ninterval = \"1h\"\n\n[[queue]]\nname = \"json\"\ntype = \"http_json\"\nurl = \"" +
                 srv.url("/q") + "\"\nvalues = [{ name = \"depth\", pointer = \"/depth\" }]\n");
  auto r = a.get("/probe?target=json&debug=true");
  auto t = transcript_part(r.body);
  EXPECT_TRUE(has(r.body, "reason=\"connection_reset\"} 1")) << r.body;
  EXPECT_TRUE(has(t, "  connected  TCP connect")) << t;
  EXPECT_TRUE(has(t, "  failed  connection_reset: GET ")) << t;
}

TEST(ProbeDebug, FilesystemTranscriptShowsTheConfiguredPathAndTiming) {
  TempDir dir;
  AgentFixture a("[agent]\ninterval = \"1h\"\n\n[[filesystem]]\nname = \"store\"\npath = \"" + dir.path().string() +
                 "\"\n\n[[filesystem]]\nname = \"gone\"\npath = \"" + (dir / "missing").string() + "\"\n");
  auto t = transcript_part(a.get("/probe?target=store&debug=true").body);
  EXPECT_TRUE(has(t, "  statvfs  " + dir.path().string() + "\n")) << t;
  EXPECT_TRUE(std::regex_search(t, std::regex(R"(  statvfs returned  after [0-9.]+ ms\n)"))) << t;
  EXPECT_TRUE(has(t, "  result  success")) << t;
  auto g = transcript_part(a.get("/probe?target=gone&debug=true").body);
  EXPECT_TRUE(std::regex_search(g, std::regex(R"(  statvfs failed  after [0-9.]+ ms: No such file or directory\n)")))
      << g;
  EXPECT_TRUE(has(g, "  failed  io_error: ")) << g;
}

TEST(ProbeDebug, SpoolTranscriptCountsFilesButNeverNamesThem) {
  TempDir dir;
  // File names such as a modality writes them can carry patient data.
  dir.write("spool/Doe^John_PID-CANARY-4711.dcm", std::string(100, 'x'));
  dir.write("spool/CANARY^PATIENT_2.dcm", std::string(24, 'x'));
  AgentFixture a("[agent]\ninterval = \"1h\"\n\n[[queue]]\nname = \"spool\"\ntype = \"directory\"\npath = \"" +
                 (dir / "spool").string() + "\"\n");
  auto r = a.get("/probe?target=spool&debug=true");
  auto t = transcript_part(r.body);
  EXPECT_TRUE(has(t, "  scan  " + (dir / "spool").string() + "\n")) << t;
  EXPECT_TRUE(has(t, "  counted  2 files, 124 bytes\n")) << t;  // control: both files were seen
  EXPECT_TRUE(has(r.body, "pacs_queue_items{probe=\"queue_directory\",target=\"spool\"} 2")) << r.body;
  expect_no_canary(r.body);
}

TEST(ProbeDebug, WithoutDebugTheAnswerIsAnExpositionOnly) {
  TempDir dir;
  AgentFixture a("[agent]\ninterval = \"1h\"\n\n[[filesystem]]\nname = \"store\"\npath = \"" + dir.path().string() +
                 "\"\n");
  for (const char* q : {"/probe?target=store", "/probe?target=store&debug=false", "/probe?target=store&debug=1"}) {
    auto r = a.get(q);
    EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8") << q;
    EXPECT_FALSE(has(r.body, "Transcript of")) << q;
    EXPECT_FALSE(has(r.body, "Metrics that would")) << q;
  }
}

// ---- per-target history ------------------------------------------------------------------------

ProbeSpec spec_for(const std::string& probe, const std::string& target) {
  ProbeSpec s;
  s.kind = "queue";
  s.check = "directory";
  s.probe = probe;
  s.target = target;
  s.fingerprint = target;
  return s;
}

RunOutcome outcome(bool ok, const std::string& message = {}) {
  RunOutcome o;
  o.result = ok ? ProbeResult::ok() : ProbeResult::fail(Reason::io_error, message);
  o.end = std::chrono::system_clock::now();
  return o;
}

std::shared_ptr<const Transcript> transcript(const std::string& step) {
  auto t = std::make_shared<Transcript>();
  t->add(step, "detail");
  return t;
}

TEST(TargetHistory, AFailingTargetDoesNotEvictAnotherTargetsHistory) {
  TargetHistory h;
  auto noisy = spec_for("queue_directory", "noisy"), quiet = spec_for("queue_directory", "quiet");
  h.set_probes({noisy, quiet});
  h.record(quiet, outcome(false, "quiet failed once"), transcript("quiet-failure"));
  for (int i = 0; i < 5; ++i) h.record(quiet, outcome(true), transcript("quiet-ok"));
  for (int i = 0; i < 10 * static_cast<int>(TargetHistory::kRuns); ++i) {
    h.record(noisy, outcome(false, "noisy " + std::to_string(i)), transcript("noisy-" + std::to_string(i)));
  }
  auto q = h.target("quiet");
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].runs.size(), 6u);
  EXPECT_EQ(q[0].runs.back().message, "quiet failed once");
  ASSERT_TRUE(q[0].last_failure);
  EXPECT_EQ(q[0].last_failure->run.message, "quiet failed once");
  EXPECT_EQ(q[0].last_failure->transcript->steps().at(0).step, "quiet-failure");
  ASSERT_TRUE(q[0].last_run);
  EXPECT_TRUE(q[0].last_run->run.success);
  auto n = h.target("noisy");
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].runs.size(), TargetHistory::kRuns);  // bounded, newest kept
  EXPECT_EQ(n[0].runs.front().message, "noisy " + std::to_string(10 * TargetHistory::kRuns - 1));
  EXPECT_EQ(n[0].last_failure->transcript->steps().at(0).step, "noisy-" + std::to_string(10 * TargetHistory::kRuns - 1));
}

TEST(TargetHistory, ReloadKeepsUnchangedProbesAndDropsChangedOnes) {
  TargetHistory h;
  auto a = spec_for("queue_directory", "a"), b = spec_for("queue_directory", "b");
  h.set_probes({a, b});
  h.record(a, outcome(false, "a"), transcript("a"));
  h.record(b, outcome(false, "b"), transcript("b"));
  auto b2 = b;
  b2.fingerprint = "changed";
  h.set_probes({a, b2});
  EXPECT_EQ(h.target("a").at(0).runs.size(), 1u);
  EXPECT_TRUE(h.target("b").at(0).runs.empty());
  h.record(b, outcome(false, "late run of the old b"), nullptr);  // in flight across the reload: dropped
  EXPECT_TRUE(h.target("b").at(0).runs.empty());
  h.set_probes({b2});
  EXPECT_TRUE(h.target("a").empty());
}

TEST(TargetPage, KeepsTheLastFailureTranscriptWhileAnotherTargetFailsEveryRun) {
  TempDir dir;
  std::filesystem::path late = dir / "late";  // missing at first: "later" fails, then succeeds
  AgentFixture a("[agent]\ninterval = \"50ms\"\ntimeout = \"50ms\"\n\n"
                 "[[queue]]\nname = \"broken\"\ntype = \"directory\"\npath = \"" + (dir / "never").string() + "\"\n\n"
                 "[[queue]]\nname = \"later\"\ntype = \"directory\"\npath = \"" + late.string() + "\"\n");
  a.wait_for("/target?name=later", [](const std::string& b) { return has(b, "Last failure"); });
  std::filesystem::create_directories(late);
  // "broken" fails every 50 ms; run it well past the size of one history ring.
  a.wait_for("/metrics", [](const std::string& m) {
    auto v = test::metric_value(m, "pacs_probe_runs_total{probe=\"queue_directory\",target=\"broken\"}");
    return v && *v > 3 * TargetHistory::kRuns;
  });
  auto page = a.wait_for("/target?name=later", [](const std::string& b) { return has(b, "<h3>Last run</h3>"); });
  // The failure's transcript, in order, then the last (successful) run's.
  auto fail_at = page.find("<h3>Last failure</h3>");
  auto scan_at = page.find("  scan  " + late.string() + "\n", fail_at);
  auto counted_at = page.find("  counted  0 files, 0 bytes, first error: No such file or directory\n", scan_at);
  auto failed_at = page.find("  failed  io_error: ", counted_at);
  auto last_at = page.find("<h3>Last run</h3>", failed_at);
  auto ok_at = page.find("  counted  0 files, 0 bytes\n", last_at);
  EXPECT_NE(fail_at, std::string::npos) << page;
  EXPECT_NE(scan_at, std::string::npos) << page;
  EXPECT_NE(counted_at, std::string::npos) << page;
  EXPECT_NE(failed_at, std::string::npos) << page;
  EXPECT_NE(last_at, std::string::npos) << page;
  EXPECT_NE(ok_at, std::string::npos) << page;
  auto broken = a.get("/target?name=broken").body;
  size_t rows = 0;
  for (size_t p = broken.find("<td data-label=\"Result\""); p != std::string::npos;
       p = broken.find("<td data-label=\"Result\"", p + 1)) {
    ++rows;
  }
  EXPECT_EQ(rows, TargetHistory::kRuns);
  EXPECT_EQ(a.get("/target?name=nope").status, 404);
  EXPECT_EQ(a.get("/target?name=%3Cscript%3E").body, "unknown target (only configured targets have a page)\n");
  EXPECT_EQ(a.get("/target").status, 400);
}

// ---- figures -----------------------------------------------------------------------------------

TEST(Figures, FilesystemShowsFreeSpaceWithPercentAndInodes) {
  std::vector<Sample> s = {{"pacs_filesystem_size_bytes", "", {{"path", "/x"}}, 100.0 * (1 << 30)},
                           {"pacs_filesystem_avail_bytes", "", {{"path", "/x"}}, 45.6 * (1 << 30)},
                           {"pacs_filesystem_files", "", {{"path", "/x"}}, 1000},
                           {"pacs_filesystem_files_free", "", {{"path", "/x"}}, 981},
                           {"pacs_filesystem_readonly", "", {{"path", "/x"}}, 1},
                           {"pacs_filesystem_stuck", "", {{"path", "/x"}}, 0}};
  auto f = make_figures(find_kind("filesystem"), "filesystem", s, std::chrono::system_clock::now());
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].label + " " + f[0].value, "free 45.6 GiB (45.6%)");
  EXPECT_EQ(f[1].label + " " + f[1].value, "inodes free 981 (98.1%)");
  EXPECT_EQ(f[2].label, "read-only");
  s[2].value = s[3].value = 0;  // no fixed inode table (btrfs): no inode figure
  EXPECT_EQ(make_figures(find_kind("filesystem"), "filesystem", s, std::chrono::system_clock::now()).size(), 2u);
}

TEST(Figures, QueuesShowItemsByStateAndOldestAge) {
  std::vector<Sample> s = {{"pacs_queue_items", "", {{"state", "pending"}, {"job_type", "A"}}, 2},
                           {"pacs_queue_items", "", {{"state", "pending"}, {"job_type", "B"}}, 1},
                           {"pacs_queue_items", "", {{"state", "failure"}, {"job_type", "A"}}, 0},
                           {"pacs_queue_oldest_item_age_seconds", "", {}, 200},
                           {"pacs_archive_studies", "", {}, 12}};
  auto f = make_figures(find_kind("queue"), "orthanc", s, std::chrono::system_clock::now());
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].label + " " + f[0].value, "jobs pending 3");
  EXPECT_EQ(f[1].label + " " + f[1].value, "oldest 3 min");
  EXPECT_EQ(f[2].label + " " + f[2].value, "studies 12");
}

TEST(Figures, KindsWithoutFiguresShowEverySampleInItsUnit) {
  auto now = std::chrono::system_clock::now();
  double in_200_days = std::chrono::duration<double>(now.time_since_epoch()).count() + 200 * 86400 + 600;
  std::vector<Sample> s = {{"pacs_dicom_phase_duration_seconds", "", {{"phase", "connect"}}, 0.00041},
                           {"pacs_dicom_find_matches", "", {}, 3},
                           {"pacs_dicom_phase_duration_seconds", "", {{"phase", "dimse"}}, 0.0021},
                           {"pacs_dicom_tls_cert_expiry_timestamp_seconds", "", {}, in_200_days}};
  Kind bare{.name = "dicom", .summary = "", .checks = {}};
  auto f = make_figures(&bare, "find", s, now);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].label + " " + f[0].value, "phase duration: connect 0.41 ms, dimse 2.10 ms");
  EXPECT_EQ(f[1].label + " " + f[1].value, "find matches 3");
  EXPECT_EQ(f[2].label + " " + f[2].value, "tls cert expiry in 200 days");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_duration(5400), "90 min");
}

TEST(StatusPage, EveryRowLinksItsTargetPageAndShowsItsFigures) {
  TempDir dir;
  dir.write("spool/a.dcm", "x");
  AgentFixture a("[agent]\ninterval = \"100ms\"\ntimeout = \"100ms\"\n\n[[filesystem]]\nname = \"store\"\npath = \"" + dir.path().string() +
                 "\"\n\n[[queue]]\nname = \"spool\"\ntype = \"directory\"\npath = \"" + (dir / "spool").string() +
                 "\"\n");
  auto page = a.wait_for("/", [](const std::string& b) {
    return has(b, "data-metric=\"pacs_queue_items\">items <b>1</b>") && has(b, "pacs_filesystem_avail_bytes");
  });
  EXPECT_TRUE(has(page, "<a href=\"/target?name=store\">store</a>")) << page;
  EXPECT_TRUE(has(page, "<a href=\"/target?name=spool\">spool</a>")) << page;
  EXPECT_TRUE(std::regex_search(page, std::regex(R"(free <b>[0-9.]+ [KMGTP]iB \([0-9.]+%\)</b>)"))) << page;
  EXPECT_TRUE(has(page, "<meta name=\"viewport\"")) << page;
  EXPECT_FALSE(has(page, "<script")) << page;
}

}  // namespace
}  // namespace pacs
