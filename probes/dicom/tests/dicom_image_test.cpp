// The image checks (store, retrieve, commit) against real peers on
// 127.0.0.1: Orthanc (store + find back + REST cleanup, C-GET, C-MOVE to the
// agent's SCP, storage commitment with the report on a new association),
// dcmqrscp as a second archive, storescp as a wrong move destination, and
// MiniPacs (tests/mini_pacs.h) for the lies no real archive here tells.
// Also: the agent's SCP never leaks a thread or a descriptor, whatever path
// a run takes.
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "probes/dicom/dicom_probe.h"
#include "probes/dicom/storage_scp.h"
#include "probes/dicom/tests/mini_pacs.h"
#include "probes/log.h"
#include "tests/support/support.h"

namespace pacs::dicom {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::TempDir;
using MiniPacs = pacs::dicom::peers::MiniPacs;

std::mutex g_lines_mu;
std::vector<std::string> g_lines;

Logger& test_logger() {
  static Logger log(LogLevel::debug, [](std::string_view line) {
    std::lock_guard lk(g_lines_mu);
    g_lines.emplace_back(line);
  });
  return log;
}

class Env : public ::testing::Environment {
 public:
  void SetUp() override {
    global_init(test_logger());
    http::global_init();
  }
  void TearDown() override {
    http::global_shutdown();
    global_shutdown();
  }
};
[[maybe_unused]] const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new Env);

constexpr const char* kRoot = "1.2.826.0.1.3680043.10.999";

DicomOptions target(int port, const std::string& called) {
  DicomOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.called_ae_title = called;
  o.calling_ae_title = "PACS_AGENT";
  o.store = StoreOptions{};
  o.store->canary.uid_root = kRoot;
  return o;
}

DicomOptions orthanc_target(const test::Orthanc& orthanc) {
  auto o = target(orthanc.dicom_port(), orthanc.aet());
  o.store->canary.cleanup.type = canary::Cleanup::Type::orthanc;
  o.store->canary.cleanup.url = orthanc.url();
  return o;
}

struct Run {
  ProbeResult result;
  double seconds = 0;
  std::string transcript;
};

Run run(DicomProbe& p, Duration timeout = 10s) {
  ProbeContext ctx;
  ctx.deadline = Clock::now() + timeout;
  ctx.log = &test_logger();
  Transcript t;
  ctx.transcript = &t;
  auto t0 = Clock::now();
  Run r{p.run(ctx), 0, {}};
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.transcript = t.text();
  return r;
}

Run run(const DicomOptions& o, Check c, Duration timeout = 10s) {
  DicomProbe p(o, c);
  return run(p, timeout);
}

std::optional<double> sample(const ProbeResult& r, const std::string& name, const Labels& labels = {}) {
  for (const auto& s : r.samples)
    if (s.name == name && (labels.empty() || s.labels == labels)) return s.value;
  return std::nullopt;
}

std::string describe(const Run& r) {
  std::string s = "success=" + std::to_string(r.result.success) + " reason=" + std::string(to_string(r.result.reason)) +
                  " message=\"" + r.result.message + "\" took=" + std::to_string(r.seconds) + "s samples:";
  for (const auto& x : r.result.samples) {
    s += " " + x.name;
    for (const auto& [k, v] : x.labels) s += "{" + k + "=" + v + "}";
    s += "=" + std::to_string(x.value);
  }
  return s + "\ntranscript:\n" + r.transcript;
}

size_t open_fds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

int studies_in(const test::Orthanc& o) {
  auto r = test::http_get(o.http_port(), "/studies");
  return r.status == 200 ? static_cast<int>(nlohmann::json::parse(r.body).size()) : -1;
}

// Orthanc that knows the agent as a modality at `scp_port` (C-MOVE
// destination, storage commitment reports).
test::Orthanc::Options orthanc_with_agent(int scp_port, std::vector<std::string> extra = {}) {
  test::Orthanc::Options o;
  o.modalities["agent"] = {"PACS_AGENT", "127.0.0.1", scp_port};
  o.extra_json = std::move(extra);
  return o;
}

// ---------------------------------------------------------------------------
// store

TEST(ImageOrthanc, StoreFindBackCleanupTwentyTimesCanaryCountEndsAtZero) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  DicomProbe probe(orthanc_target(orthanc), Check::store);  // one instance, as the scheduler keeps it
  for (int i = 0; i < 20; ++i) {
    auto r = run(probe);
    ASSERT_TRUE(r.result.success) << "run " << i << ": " << describe(r) << orthanc.log();
    EXPECT_EQ(sample(r.result, "pacs_dicom_dimse_status"), 0.0);
    EXPECT_GT(sample(r.result, "pacs_dicom_store_seconds").value_or(-1), 0.0);
    EXPECT_GE(sample(r.result, "pacs_dicom_store_findable_seconds").value_or(-1), 0.0);
    EXPECT_EQ(sample(r.result, "pacs_dicom_canary_cleanup_success"), 1.0);
    EXPECT_EQ(sample(r.result, "pacs_dicom_canary_studies"), 0.0) << describe(r);
    EXPECT_TRUE(sample(r.result, "pacs_dicom_phase_duration_seconds", {{"phase", "dimse"}}));
  }
  EXPECT_EQ(studies_in(orthanc), 0);
  EXPECT_EQ(probe.pending_cleanups(), 0u);

  // Control: without cleanup the count follows what really is in the archive.
  auto keep = orthanc_target(orthanc);
  keep.store->canary.cleanup.type = canary::Cleanup::Type::none;
  auto a = run(keep, Check::store);
  ASSERT_TRUE(a.result.success) << describe(a);
  EXPECT_EQ(sample(a.result, "pacs_dicom_canary_studies"), 1.0);
  EXPECT_FALSE(sample(a.result, "pacs_dicom_canary_cleanup_success")) << "no cleanup configured: no gauge";
  auto b = run(keep, Check::store);
  EXPECT_EQ(sample(b.result, "pacs_dicom_canary_studies"), 2.0);
  EXPECT_EQ(studies_in(orthanc), 2);
}

TEST(ImageOrthanc, FailedCleanupIsRetriedByTheNextRun) {
  PACS_REQUIRE_PEER("Orthanc");
  TempDir tmp;
  test::Orthanc::Options opts;
  // Repeated keys: Orthanc's JSON reader keeps the last one.
  opts.extra_json = {"\"AuthenticationEnabled\": true", "\"RegisteredUsers\": {\"agent\": \"s3cret\"}"};
  test::Orthanc orthanc(opts);
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto pw = tmp.write("pw", "not-the-password\n");
  auto o = orthanc_target(orthanc);
  o.store->canary.cleanup.http.auth.type = http::Auth::Type::basic;
  o.store->canary.cleanup.http.auth.username = "agent";
  o.store->canary.cleanup.http.auth.password_file = pw.string();
  auto studies = [&] {  // "agent:s3cret"
    auto r = test::http_get(orthanc.http_port(), "/studies", {{"Authorization", "Basic YWdlbnQ6czNjcmV0"}});
    return r.status == 200 ? static_cast<int>(nlohmann::json::parse(r.body).size()) : -1;
  };
  DicomProbe probe(o, Check::store);
  auto r = run(probe);
  ASSERT_TRUE(r.result.success) << "a failed cleanup is not an ingest failure: " << describe(r);
  EXPECT_EQ(sample(r.result, "pacs_dicom_canary_cleanup_success"), 0.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_canary_studies"), 1.0);
  EXPECT_NE(r.result.message.find("cleanup: Orthanc /tools/lookup failed: HTTP 401"), std::string::npos)
      << r.result.message;
  EXPECT_EQ(probe.pending_cleanups(), 1u);
  EXPECT_EQ(studies(), 1);
  // The password is fixed (the file is read at every run): the next run of
  // the same probe deletes its own canary and the leftover.
  tmp.write("pw", "s3cret\n");
  auto r2 = run(probe);
  ASSERT_TRUE(r2.result.success) << describe(r2);
  EXPECT_EQ(sample(r2.result, "pacs_dicom_canary_cleanup_success"), 1.0);
  EXPECT_EQ(sample(r2.result, "pacs_dicom_canary_studies"), 0.0) << describe(r2);
  EXPECT_EQ(probe.pending_cleanups(), 0u);
  EXPECT_EQ(studies(), 0);
}

TEST(ImageMiniPacs, AcceptedButNeverFoundIsStoredNotFound) {
  MiniPacs pacs(MiniPacs::Mode::hide_stored);
  auto o = target(pacs.port(), pacs.aet());
  auto r = run(o, Check::store, 3s);
  EXPECT_FALSE(r.result.success);
  EXPECT_EQ(r.result.reason, Reason::stored_not_found) << describe(r);
  EXPECT_EQ(pacs.stored(), 1) << "control: the archive did receive the canary";
  EXPECT_EQ(sample(r.result, "pacs_dicom_dimse_status"), 0.0) << "the C-STORE itself succeeded";
  EXPECT_NE(r.result.message.find("answered the C-STORE with 0x0000 (Success) but"), std::string::npos)
      << r.result.message;
  EXPECT_LT(r.seconds, 3.0 + 0.5);
  EXPECT_GE(r.seconds, 3.0 * 0.5) << "it kept looking for a good part of the timeout";
}

TEST(ImageMiniPacs, OutOfResourcesIsDimseStatusA700) {
  MiniPacs pacs(MiniPacs::Mode::store_full);
  auto r = run(target(pacs.port(), pacs.aet()), Check::store, 3s);
  EXPECT_EQ(r.result.reason, Reason::dimse_status) << describe(r);
  EXPECT_EQ(sample(r.result, "pacs_dicom_dimse_status"), 0xA700);
  EXPECT_EQ(r.result.message, "C-STORE of the canary returned status 0xA700 (Refused: OutOfResources)");
}

// ---------------------------------------------------------------------------
// retrieve

TEST(ImageOrthanc, GetRetrievesTheCanaryWithExactSubOperationCounts) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto o = orthanc_target(orthanc);
  o.checks = {Check::store, Check::retrieve};
  auto r = run(o, Check::retrieve);
  ASSERT_TRUE(r.result.success) << describe(r) << orthanc.log();
  EXPECT_EQ(sample(r.result, "pacs_dicom_dimse_status"), 0.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_retrieve_suboperations", {{"result", "completed"}}), 1.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_retrieve_suboperations", {{"result", "failed"}}), 0.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_retrieve_suboperations", {{"result", "warning"}}), 0.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_retrieve_instances"), 1.0);
  EXPECT_GT(sample(r.result, "pacs_dicom_retrieve_bytes").value_or(0), 256.0) << "at least the pixel data";
  EXPECT_GT(sample(r.result, "pacs_dicom_retrieve_first_instance_seconds").value_or(-1), 0.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_canary_cleanup_success"), 1.0);
  EXPECT_EQ(studies_in(orthanc), 0);
}

TEST(ImageOrthanc, MoveRetrievesTheCanaryThroughTheAgentsScp) {
  PACS_REQUIRE_PEER("Orthanc");
  const int scp_port = test::free_port();
  test::Orthanc orthanc(orthanc_with_agent(scp_port));
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto o = orthanc_target(orthanc);
  o.checks = {Check::store, Check::retrieve};
  o.retrieve.method = RetrieveOptions::Method::move;
  o.retrieve.scp = {"PACS_AGENT", "127.0.0.1", scp_port};
  size_t fds = open_fds();
  auto r = run(o, Check::retrieve);
  ASSERT_TRUE(r.result.success) << describe(r) << orthanc.log();
  EXPECT_EQ(sample(r.result, "pacs_dicom_retrieve_suboperations", {{"result", "completed"}}), 1.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_retrieve_suboperations", {{"result", "failed"}}), 0.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_retrieve_suboperations", {{"result", "warning"}}), 0.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_retrieve_instances"), 1.0);
  EXPECT_GT(sample(r.result, "pacs_dicom_retrieve_bytes").value_or(0), 256.0);
  EXPECT_NE(r.transcript.find("inbound A-ASSOCIATE-AC"), std::string::npos) << r.transcript;
  EXPECT_NE(r.transcript.find("inbound C-STORE-RQ  expected instance received"), std::string::npos) << r.transcript;
  EXPECT_EQ(StorageScp::running_threads(), 0);
  EXPECT_EQ(open_fds(), fds) << "the SCP's socket, thread pipe or association leaked";
  EXPECT_FALSE(test::wait_for_port(scp_port, 200ms)) << "the SCP port is still bound after the run";
  EXPECT_EQ(studies_in(orthanc), 0);
}

// Orthanc 1.10.1 answers an unknown move destination with 0xC000 (unable to
// process), not 0xA801 (dcmqrscp does: ImageDcmqrscp below).
TEST(ImageOrthanc, MoveToUnknownDestinationIsDimseStatus) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto o = orthanc_target(orthanc);
  o.checks = {Check::store, Check::retrieve};
  o.retrieve.method = RetrieveOptions::Method::move;
  o.retrieve.scp = {"NOBODY_KNOWS", "127.0.0.1", test::free_port()};
  auto r = run(o, Check::retrieve);
  EXPECT_EQ(r.result.reason, Reason::dimse_status) << describe(r);
  EXPECT_EQ(sample(r.result, "pacs_dicom_dimse_status"), 0xC000) << describe(r);
  EXPECT_EQ(r.result.message.rfind("C-MOVE returned status 0xC000 (Failed: UnableToProcess)", 0), 0u)
      << r.result.message;
  EXPECT_NE(orthanc.log().find("NOBODY_KNOWS"), std::string::npos) << "control: Orthanc names the unknown modality\n"
                                                                     << orthanc.log();
  EXPECT_EQ(StorageScp::running_threads(), 0);
  EXPECT_EQ(studies_in(orthanc), 0) << "the canary was cleaned up on the failure path too";
}

// The archive maps the agent's AE title to another host and port (here a
// storescp that swallows everything): it reports success, the agent never
// hears from it.
TEST(ImageOrthanc, MoveDeliveredElsewhereIsInboundTimeoutAtTheDeadline) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("storescp");
  TempDir tmp;
  int elsewhere = test::free_port();
  test::Process sink({"storescp", "--ignore", "-aet", "PACS_AGENT", std::to_string(elsewhere)}, tmp / "storescp.log",
                     {}, tmp.path());
  ASSERT_TRUE(test::wait_for_port(elsewhere)) << sink.log();
  test::Orthanc orthanc(orthanc_with_agent(elsewhere));
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto o = orthanc_target(orthanc);
  o.checks = {Check::store, Check::retrieve};
  o.retrieve.method = RetrieveOptions::Method::move;
  o.retrieve.scp = {"PACS_AGENT", "127.0.0.1", test::free_port()};
  auto r = run(o, Check::retrieve, 4s);
  EXPECT_EQ(r.result.reason, Reason::inbound_timeout) << describe(r);
  EXPECT_EQ(sample(r.result, "pacs_dicom_retrieve_suboperations", {{"result", "completed"}}), 1.0)
      << "control: the archive did deliver it, elsewhere";
  EXPECT_EQ(sample(r.result, "pacs_dicom_retrieve_instances"), 0.0);
  EXPECT_NE(r.result.message.find("never connected to the agent's SCP"), std::string::npos) << r.result.message;
  EXPECT_LT(r.seconds, 4.0 + 0.5);
  EXPECT_EQ(StorageScp::running_threads(), 0);
}

TEST(ImageOrthanc, FixedStudyByGetAndMove) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  TempDir tmp;
  const int scp_port = test::free_port();
  test::Orthanc orthanc(orthanc_with_agent(scp_port));
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto f = test::make_dicom_file(tmp / "qc.dcm", "QC^PHANTOM", "QC1", "20240101");
  ASSERT_EQ(orthanc.upload(f), 200);
  auto studies = nlohmann::json::parse(test::http_get(orthanc.http_port(), "/studies?expand").body);
  ASSERT_EQ(studies.size(), 1u);
  const std::string qc = studies[0]["MainDicomTags"]["StudyInstanceUID"];
  auto o = target(orthanc.dicom_port(), orthanc.aet());
  o.store.reset();
  o.checks = {Check::retrieve};
  o.retrieve.study_uid = qc;
  auto g = run(o, Check::retrieve);
  ASSERT_TRUE(g.result.success) << describe(g);
  EXPECT_EQ(sample(g.result, "pacs_dicom_retrieve_instances"), 1.0);
  EXPECT_FALSE(sample(g.result, "pacs_dicom_canary_cleanup_success"));
  o.retrieve.method = RetrieveOptions::Method::move;
  o.retrieve.scp = {"PACS_AGENT", "127.0.0.1", scp_port};
  auto m = run(o, Check::retrieve);
  ASSERT_TRUE(m.result.success) << describe(m);
  EXPECT_EQ(sample(m.result, "pacs_dicom_retrieve_instances"), 1.0);
  EXPECT_EQ(studies_in(orthanc), 1) << "a fixed study is never deleted";
  // A QC study that is gone: Orthanc 1.10.1 refuses the C-GET (0xC000).
  o.retrieve.study_uid = std::string(kRoot) + ".42";
  o.retrieve.method = RetrieveOptions::Method::get;
  auto gone = run(o, Check::retrieve);
  EXPECT_EQ(gone.result.reason, Reason::dimse_status) << describe(gone);
  EXPECT_EQ(sample(gone.result, "pacs_dicom_dimse_status"), 0xC000);
  for (const auto* x : {&g, &m}) {
    EXPECT_EQ(x->transcript.find(qc), std::string::npos) << "the study UID leaked into the transcript";
    EXPECT_EQ(x->result.message.find(qc), std::string::npos);
  }
}

TEST(ImageMiniPacs, RetrievedObjectDifferingFromTheStoredOneIsContentMismatch) {
  MiniPacs pacs(MiniPacs::Mode::corrupt_get);
  auto o = target(pacs.port(), pacs.aet());
  o.checks = {Check::store, Check::retrieve};
  auto r = run(o, Check::retrieve, 5s);
  EXPECT_EQ(r.result.reason, Reason::content_mismatch) << describe(r);
  EXPECT_EQ(r.result.message.rfind("the retrieved canary differs from what was stored: PixelData", 0), 0u)
      << r.result.message;
  EXPECT_EQ(sample(r.result, "pacs_dicom_retrieve_suboperations", {{"result", "completed"}}), 1.0);
  // Control: the honest mode of the same peer passes.
  MiniPacs honest(MiniPacs::Mode::honest);
  auto h = run(target(honest.port(), honest.aet()), Check::retrieve, 5s);
  EXPECT_TRUE(h.result.success) << describe(h);
}

// ---------------------------------------------------------------------------
// dcmqrscp: a second archive (fork mode; --single-process crashes in 3.6.7)

struct Dcmqrscp {
  TempDir dir;
  int port = test::free_port();
  std::unique_ptr<test::Process> proc;
  explicit Dcmqrscp(int agent_port = 0) {
    fs::create_directories(dir / "db" / "QRSCP");
    std::string hosts = agent_port ? "agent = (PACS_AGENT, localhost, " + std::to_string(agent_port) + ")\n" : "";
    auto cfg = dir.write("dcmqrscp.cfg", "NetworkTCPPort = " + std::to_string(port) +
                                             "\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
                                             "HostTable BEGIN\n" + hosts + "HostTable END\n"
                                             "VendorTable BEGIN\nVendorTable END\n"
                                             "AETable BEGIN\nQRSCP " + (dir / "db" / "QRSCP").string() +
                                             " RW (100, 64mb) ANY\nAETable END\n");
    proc = std::make_unique<test::Process>(std::vector<std::string>{"dcmqrscp", "-c", cfg.string()},
                                           dir / "dcmqrscp.log", std::map<std::string, std::string>{}, dir.path());
  }
};

TEST(ImageDcmqrscp, StoreAndGetAndUnknownMoveDestination) {
  PACS_REQUIRE_PEER("dcmqrscp");
  Dcmqrscp qr;
  ASSERT_TRUE(test::wait_for_port(qr.port)) << qr.proc->log();
  auto o = target(qr.port, "QRSCP");
  o.checks = {Check::store, Check::retrieve};
  auto s1 = run(o, Check::store);
  ASSERT_TRUE(s1.result.success) << describe(s1) << qr.proc->log();
  EXPECT_EQ(sample(s1.result, "pacs_dicom_canary_studies"), 1.0) << "no cleanup for dcmqrscp: the count grows";
  auto s2 = run(o, Check::store);
  ASSERT_TRUE(s2.result.success) << describe(s2);
  EXPECT_EQ(sample(s2.result, "pacs_dicom_canary_studies"), 2.0);

  auto g = run(o, Check::retrieve);
  ASSERT_TRUE(g.result.success) << describe(g) << qr.proc->log();
  EXPECT_EQ(sample(g.result, "pacs_dicom_retrieve_suboperations", {{"result", "completed"}}), 1.0);
  EXPECT_EQ(sample(g.result, "pacs_dicom_retrieve_suboperations", {{"result", "failed"}}), 0.0);
  EXPECT_EQ(sample(g.result, "pacs_dicom_retrieve_instances"), 1.0);

  // A QC study that is gone: dcmqrscp finds nothing to send (0 sub-operations).
  auto qc = o;
  qc.retrieve.study_uid = std::string(kRoot) + ".42";
  auto gone = run(qc, Check::retrieve);
  EXPECT_EQ(gone.result.reason, Reason::stored_not_found) << describe(gone);
  EXPECT_EQ(sample(gone.result, "pacs_dicom_retrieve_suboperations", {{"result", "completed"}}), 0.0);

  o.retrieve.method = RetrieveOptions::Method::move;
  o.retrieve.scp = {"NOT_IN_HOSTTABLE", "127.0.0.1", test::free_port()};
  auto m = run(o, Check::retrieve);
  EXPECT_EQ(m.result.reason, Reason::dimse_status) << describe(m);
  EXPECT_EQ(sample(m.result, "pacs_dicom_dimse_status"), 0xA801);
  EXPECT_NE(m.result.message.find("does not know move destination \"NOT_IN_HOSTTABLE\""), std::string::npos)
      << m.result.message;
}

TEST(ImageDcmqrscp, MoveToTheAgentsScp) {
  PACS_REQUIRE_PEER("dcmqrscp");
  int scp_port = test::free_port();
  Dcmqrscp qr(scp_port);
  ASSERT_TRUE(test::wait_for_port(qr.port)) << qr.proc->log();
  auto o = target(qr.port, "QRSCP");
  o.checks = {Check::store, Check::retrieve};
  o.retrieve.method = RetrieveOptions::Method::move;
  o.retrieve.scp = {"PACS_AGENT", "127.0.0.1", scp_port};
  auto m = run(o, Check::retrieve);
  ASSERT_TRUE(m.result.success) << describe(m) << qr.proc->log();
  EXPECT_EQ(sample(m.result, "pacs_dicom_retrieve_suboperations", {{"result", "completed"}}), 1.0);
  EXPECT_EQ(sample(m.result, "pacs_dicom_retrieve_instances"), 1.0);
}

// ---------------------------------------------------------------------------
// commit

TEST(ImageOrthanc, StorageCommitmentReportArrivesOnANewAssociation) {
  PACS_REQUIRE_PEER("Orthanc");
  const int scp_port = test::free_port();
  test::Orthanc orthanc(orthanc_with_agent(scp_port));
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto o = orthanc_target(orthanc);
  o.checks = {Check::store, Check::commit};
  o.commit.scp = {"PACS_AGENT", "127.0.0.1", scp_port};
  size_t fds = open_fds();
  auto r = run(o, Check::commit);
  ASSERT_TRUE(r.result.success) << describe(r) << orthanc.log();
  EXPECT_NE(r.result.message.find("on a new association to the agent's SCP"), std::string::npos) << r.result.message;
  EXPECT_GT(sample(r.result, "pacs_dicom_commit_seconds").value_or(-1), 0.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_commit_failed_instances"), 0.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_dimse_status"), 0.0) << "N-ACTION-RSP";
  EXPECT_NE(r.transcript.find("inbound N-EVENT-REPORT-RQ  event type 1, 1 committed, 0 failed"), std::string::npos)
      << r.transcript;
  EXPECT_EQ(StorageScp::running_threads(), 0);
  EXPECT_EQ(open_fds(), fds);
  EXPECT_EQ(studies_in(orthanc), 0);

  // Without the agent's SCP the report cannot arrive: a clear timeout.
  o.commit.scp = {};
  auto t = run(o, Check::commit, 3s);
  EXPECT_EQ(t.result.reason, Reason::dimse_timeout) << describe(t);
  EXPECT_NE(t.result.message.find("set commit.listen_port"), std::string::npos) << t.result.message;
  EXPECT_LT(t.seconds, 3.0 + 0.5);
}

TEST(ImageMiniPacs, CommitmentOnTheSameAssociationSuccessAndFailure) {
  MiniPacs ok(MiniPacs::Mode::honest);
  auto o = target(ok.port(), ok.aet());
  o.checks = {Check::store, Check::commit};
  auto r = run(o, Check::commit, 5s);
  ASSERT_TRUE(r.result.success) << describe(r);
  EXPECT_NE(r.result.message.find("on the same association"), std::string::npos) << r.result.message;

  MiniPacs bad(MiniPacs::Mode::commit_failure);
  auto f = run(target(bad.port(), bad.aet()), Check::commit, 5s);
  EXPECT_EQ(f.result.reason, Reason::commitment_failed) << describe(f);
  EXPECT_EQ(f.result.message.rfind("storage commitment failed for the canary: failure reason 0x0112 (no such object "
                                   "instance)", 0),
            0u)
      << f.result.message;
  EXPECT_EQ(sample(f.result, "pacs_dicom_commit_failed_instances"), 1.0);

  MiniPacs silent(MiniPacs::Mode::commit_silent);
  auto so = target(silent.port(), silent.aet());
  so.commit.scp = {"PACS_AGENT", "127.0.0.1", test::free_port()};
  auto s = run(so, Check::commit, 2s);
  EXPECT_EQ(s.result.reason, Reason::inbound_timeout) << describe(s);
  EXPECT_EQ(silent.commit_requests(), 1) << "control: the request did arrive";
  EXPECT_LT(s.seconds, 2.0 + 0.5);
}

// ---------------------------------------------------------------------------
// The agent's SCP on its own

TEST(ImageScp, RefusesUnexpectedInstancesAndForeignAeTitles) {
  PACS_REQUIRE_PEER("storescu");
  PACS_REQUIRE_PEER("dump2dcm");
  TempDir tmp;
  int port = test::free_port();
  canary::Settings cs;
  cs.uid_root = kRoot;
  auto expected = canary::make_object(cs, "x");
  {
    StorageScp scp({{"PACS_AGENT", "127.0.0.1", port}, {&expected, {}}, {}, {}}, Clock::now() + 10s);
    ASSERT_EQ(scp.start(), std::nullopt);
    auto other = test::make_dicom_file(tmp / "other.dcm", "SOMEONE^ELSE", "X1", "20240101");
    std::string out;
    test::run_command({"storescu", "-v", "-aec", "PACS_AGENT", "127.0.0.1", std::to_string(port), other.string()}, &out);
    EXPECT_NE(out.find("Received Store Response (Unknown Status: 0x124)"), std::string::npos) << out;  // 0x0124 Refused: Not authorized
    test::run_command({"storescu", "-v", "-aec", "SOMEONE", "127.0.0.1", std::to_string(port), other.string()}, &out);
    EXPECT_NE(out.find("Called AE Title Not Recognized"), std::string::npos) << out;
    auto st = scp.state();
    EXPECT_EQ(st.received.refused, 1);
    EXPECT_EQ(st.received.accepted, 0);
    EXPECT_EQ(st.rejected, 1);
    // The expected one is accepted.
    std::ofstream(tmp / "canary.dcm", std::ios::binary) << expected.part10();
    test::run_command({"storescu", "-aec", "PACS_AGENT", "127.0.0.1", std::to_string(port), (tmp / "canary.dcm").string()},
                      &out);
    st = scp.wait([](const StorageScp::State& s) { return s.received.accepted == 1; }, Clock::now() + 5s);
    EXPECT_EQ(st.received.accepted, 1) << out;
  }
  // Nothing written anywhere near us.
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator{}), 2);
}

TEST(ImageScp, PortInUseIsIoErrorAndTwoRunsOnOnePortTakeTurns) {
  int port = test::free_port();
  int blocker = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  ASSERT_EQ(::bind(blocker, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(blocker, 1), 0);
  {
    StorageScp scp({{"PACS_AGENT", "127.0.0.1", port}, {}, {}, {}}, Clock::now() + 2s);
    auto f = scp.start();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->reason, Reason::io_error);
    EXPECT_NE(f->message.find("cannot listen on 127.0.0.1:" + std::to_string(port)), std::string::npos) << f->message;
  }
  ::close(blocker);
  // The same port, twice at once: the second waits for the first.
  auto first = std::make_unique<StorageScp>(StorageScp::Settings{{"PACS_AGENT", "127.0.0.1", port}, {}, {}, {}},
                                            Clock::now() + 5s);
  ASSERT_EQ(first->start(), std::nullopt);
  std::optional<Failure> second_result;
  std::thread second([&] {
    StorageScp s({{"PACS_AGENT", "127.0.0.1", port}, {}, {}, {}}, Clock::now() + 5s);
    second_result = s.start();
  });
  std::this_thread::sleep_for(100ms);
  first.reset();  // frees the port
  second.join();
  EXPECT_EQ(second_result, std::nullopt);
  // And a run that never gets the port gives up at its deadline.
  StorageScp holder({{"PACS_AGENT", "127.0.0.1", port}, {}, {}, {}}, Clock::now() + 5s);
  ASSERT_EQ(holder.start(), std::nullopt);
  StorageScp late({{"PACS_AGENT", "127.0.0.1", port}, {}, {}, {}}, Clock::now() + 300ms);
  auto t0 = Clock::now();
  auto lf = late.start();
  ASSERT_TRUE(lf);
  EXPECT_EQ(lf->reason, Reason::inbound_timeout);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 0.3 + 0.5);
}

// A peer that connects to the SCP and then says nothing, and one that
// never connects: the SCP returns at the deadline or at stop, and every
// path gives back its thread and descriptors.
TEST(ImageScp, NoThreadOrDescriptorLeaksOnAnyPath) {
  PACS_REQUIRE_PEER("Orthanc");
  size_t before = open_fds();
  {
    const int scp_port = test::free_port();
    test::Orthanc orthanc(orthanc_with_agent(scp_port));
    ASSERT_TRUE(orthanc.start()) << orthanc.log();
    size_t with_orthanc = open_fds();
    auto o = orthanc_target(orthanc);
    o.checks = {Check::store, Check::retrieve, Check::commit};
    o.retrieve.method = RetrieveOptions::Method::move;
    o.retrieve.scp = {"PACS_AGENT", "127.0.0.1", scp_port};
    o.commit.scp = o.retrieve.scp;
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(run(o, Check::retrieve).result.success);
      EXPECT_TRUE(run(o, Check::commit).result.success);
      auto unknown = o;
      unknown.retrieve.scp.ae_title = "NOBODY_KNOWS";
      EXPECT_EQ(run(unknown, Check::retrieve).result.reason, Reason::dimse_status);
      auto wrong_port = o;  // Orthanc sends to scp_port; we listen elsewhere
      wrong_port.retrieve.scp.listen_port = test::free_port();
      EXPECT_EQ(run(wrong_port, Check::retrieve, 2s).result.reason, Reason::dimse_status) << "sub-operation failed";
    }
    // A silent inbound connection during a run, cut at the deadline.
    {
      StorageScp scp({{"PACS_AGENT", "127.0.0.1", scp_port}, {}, {}, {}}, Clock::now() + 700ms);
      ASSERT_EQ(scp.start(), std::nullopt);
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(scp_port));
      ASSERT_EQ(::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
      auto t0 = Clock::now();
      scp.wait([](const StorageScp::State&) { return false; }, Clock::now() + 700ms);
      scp.stop();
      EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 0.7 + 0.5);
      ::close(c);
    }
    EXPECT_EQ(StorageScp::running_threads(), 0);
    EXPECT_EQ(open_fds(), with_orthanc);
  }
  EXPECT_EQ(open_fds(), before);
}

}  // namespace
}  // namespace pacs::dicom
