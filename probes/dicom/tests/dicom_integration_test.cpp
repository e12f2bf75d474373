// DICOM probes against real peers on 127.0.0.1 (Orthanc, dcmqrscp, storescp,
// wlmscpfs from Debian packages) and a few scripted sockets for the
// misbehaviours no real SCP offers (silence, garbage, A-ABORT, full backlog).
// Every peer is started here on free ports and stopped by its destructor.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/oflog/appender.h"
#include "dcmtk/oflog/logger.h"
#include "dcmtk/oflog/loglevel.h"
#include "dcmtk/oflog/spi/logevent.h"
#include "probes/dicom/dicom_probe.h"
#include "probes/log.h"
#include "tests/support/support.h"

namespace pacs::dicom {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::TempDir;

// ---------------------------------------------------------------------------
// One Logger for the binary, at debug level, capturing every line (ours and
// DCMTK's, routed by global_init) so tests can search them.

std::mutex g_lines_mu;
std::vector<std::string> g_lines;

Logger& test_logger() {
  static Logger log(LogLevel::debug, [](std::string_view line) {
    std::lock_guard lk(g_lines_mu);
    g_lines.emplace_back(line);
  });
  return log;
}

std::vector<std::string> captured_lines() {
  std::lock_guard lk(g_lines_mu);
  return g_lines;
}

class DicomEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { global_init(test_logger()); }
  void TearDown() override { global_shutdown(); }
};
[[maybe_unused]] const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new DicomEnvironment);

// ---------------------------------------------------------------------------

DicomOptions target(int port, const std::string& called, const std::string& calling = "PROBE") {
  DicomOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.called_ae_title = called;
  o.calling_ae_title = calling;
  return o;
}

struct ProbeRun {
  ProbeResult result;
  double seconds = 0;
};

ProbeRun run(const DicomOptions& o, Check c, Duration timeout = 5s, Transcript* transcript = nullptr) {
  DicomProbe p(o, c);
  ProbeContext ctx;
  ctx.deadline = Clock::now() + timeout;
  ctx.log = &test_logger();
  ctx.transcript = transcript;
  auto t0 = Clock::now();
  ProbeRun r{p.run(ctx), 0};
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

std::optional<double> sample(const ProbeResult& r, const std::string& name, const std::string& phase = {}) {
  for (const auto& s : r.samples) {
    if (s.name != name) continue;
    if (!phase.empty() && (s.labels.empty() || s.labels[0].second != phase)) continue;
    return s.value;
  }
  return std::nullopt;
}

std::string describe(const ProbeRun& r) {
  std::string s = "success=" + std::to_string(r.result.success) + " reason=" + std::string(to_string(r.result.reason)) +
                  " message=\"" + r.result.message + "\" took=" + std::to_string(r.seconds) + "s samples:";
  for (const auto& x : r.result.samples) {
    s += " " + x.name;
    for (const auto& [k, v] : x.labels) s += "{" + k + "=" + v + "}";
    s += "=" + std::to_string(x.value);
  }
  return s;
}

std::string today() { return today_dicom_date(); }

// A real Orthanc with our calling AE registered, optionally with worklists.
test::Orthanc::Options orthanc_options(std::vector<std::string> extra = {}) {
  test::Orthanc::Options o;
  o.aet = "ORTHANC";
  o.modalities["probe"] = {"PROBE", "127.0.0.1", 104};
  o.extra_json = std::move(extra);
  return o;
}

// ---------------------------------------------------------------------------
// Scripted peers: behaviours real SCPs do not offer.

class ScriptedPeer {
 public:
  enum class Mode {
    silent,        // accepts TCP, never says anything
    garbage,       // answers the A-ASSOCIATE-RQ with bytes that are not a PDU
    abort,         // answers the A-ASSOCIATE-RQ with an A-ABORT
    backlog_full,  // never accepts; the test fills the accept queue
  };
  explicit ScriptedPeer(Mode m) : mode_(m) {
    lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind");
    socklen_t len = sizeof a;
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(lfd_, m == Mode::backlog_full ? 0 : 16);
    if (m != Mode::backlog_full) thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedPeer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int fd : conns_) ::close(fd);
    ::close(lfd_);
  }
  int port() const { return port_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{lfd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      conns_.push_back(fd);
      if (mode_ == Mode::silent) continue;
      char buf[4096];
      pollfd q{fd, POLLIN, 0};
      if (::poll(&q, 1, 2000) > 0 && ::read(fd, buf, sizeof buf) > 0) {
        if (mode_ == Mode::garbage) {
          static const char junk[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
          (void)!::write(fd, junk, sizeof junk - 1);
        } else {
          static const unsigned char abort_pdu[] = {0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0};
          (void)!::write(fd, abort_pdu, sizeof abort_pdu);
        }
      }
    }
  }

  Mode mode_;
  int lfd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<int> conns_;
};

// ---------------------------------------------------------------------------
// Orthanc: success paths.

TEST(DicomOrthanc, EchoSucceedsWithEveryPhaseTimed) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc(orthanc_options());
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto r = run(target(orthanc.dicom_port(), "ORTHANC"), Check::echo);
  ASSERT_TRUE(r.result.success) << describe(r);
  EXPECT_EQ(r.result.reason, Reason::none);
  for (const char* phase : {"connect", "associate", "dimse", "release"}) {
    auto v = sample(r.result, "pacs_dicom_phase_duration_seconds", phase);
    ASSERT_TRUE(v) << "phase " << phase << " missing: " << describe(r);
    EXPECT_GT(*v, 0.0) << phase;
    EXPECT_LT(*v, r.seconds + 0.001) << phase;
  }
  EXPECT_EQ(sample(r.result, "pacs_dicom_dimse_status"), 0.0);
  EXPECT_FALSE(sample(r.result, "pacs_dicom_association_reject_reason"));
  EXPECT_FALSE(sample(r.result, "pacs_dicom_tls_cert_expiry_timestamp_seconds"));
}

TEST(DicomOrthanc, FindCountsExactlyTodaysStudies) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  test::Orthanc orthanc(orthanc_options());
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  TempDir tmp;
  for (int i = 0; i < 3; ++i) {
    auto f = test::make_dicom_file(tmp / ("t" + std::to_string(i) + ".dcm"), "TODAY^" + std::to_string(i),
                                   "T" + std::to_string(i), today());
    ASSERT_EQ(orthanc.upload(f), 200);
  }
  ASSERT_EQ(orthanc.upload(test::make_dicom_file(tmp / "old.dcm", "OLD^ONE", "O1", "20000101")), 200);

  auto o = target(orthanc.dicom_port(), "ORTHANC");
  o.find.keys = {{"StudyDate", "today"}};
  auto r = run(o, Check::find);
  ASSERT_TRUE(r.result.success) << describe(r);
  EXPECT_EQ(sample(r.result, "pacs_dicom_find_matches"), 3.0) << describe(r);
  auto first = sample(r.result, "pacs_dicom_find_first_response_seconds");
  ASSERT_TRUE(first);
  EXPECT_GT(*first, 0.0);
  EXPECT_LE(*first, *sample(r.result, "pacs_dicom_phase_duration_seconds", "dimse"));
  EXPECT_EQ(sample(r.result, "pacs_dicom_dimse_status"), 0.0);
  EXPECT_EQ(r.result.message.rfind("C-FIND 3 matches in ", 0), 0u) << r.result.message;

  // The other date, and every date: the count follows the keys.
  o.find.keys = {{"StudyDate", "20000101"}};
  EXPECT_EQ(sample(run(o, Check::find).result, "pacs_dicom_find_matches"), 1.0);
  o.find.keys = {};
  EXPECT_EQ(sample(run(o, Check::find).result, "pacs_dicom_find_matches"), 4.0);
  // Patient root, PATIENT level: 4 distinct patients.
  o.find.level = FindOptions::Level::patient;
  o.find.model = FindOptions::Model::patient_root;
  auto p = run(o, Check::find);
  ASSERT_TRUE(p.result.success) << describe(p);
  EXPECT_EQ(sample(p.result, "pacs_dicom_find_matches"), 4.0);
}

std::string worklist_dump(const std::string& date, const std::string& station, const std::string& modality,
                          int n) {
  std::string s = "(0008,0005) CS [ISO_IR 100]\n(0008,0050) SH [ACC" + std::to_string(n) + "]\n"
                  "(0010,0010) PN [WL^PATIENT" + std::to_string(n) + "]\n(0010,0020) LO [WL" + std::to_string(n) + "]\n"
                  "(0020,000d) UI [1.2.826.0.1.3680043.2.1143.99." + std::to_string(n) + "]\n"
                  "(0032,1060) LO [CT HEAD]\n(0040,1001) SH [RP" + std::to_string(n) + "]\n"
                  "(0040,0100) SQ (Sequence with undefined length)\n"
                  "(fffe,e000) na (Item with undefined length)\n"
                  "(0008,0060) CS [" + modality + "]\n(0040,0001) AE [" + station + "]\n"
                  "(0040,0002) DA [" + date + "]\n(0040,0003) TM [080000]\n(0040,0007) LO [HEAD]\n"
                  "(0040,0009) SH [SPS" + std::to_string(n) + "]\n"
                  "(fffe,e00d) na (ItemDelimitationItem)\n(fffe,e0dd) na (SequenceDelimitationItem)\n";
  return s;
}

// Four worklist files in `dir`: 2 for CT01 today, 1 for CT01 another day, 1 for MR01 today.
void write_worklists(const TempDir& tmp, const fs::path& dir) {
  fs::create_directories(dir);
  struct W {
    std::string date, station, modality;
  };
  std::vector<W> ws = {{today(), "CT01", "CT"}, {today(), "CT01", "CT"}, {"20000101", "CT01", "CT"},
                       {today(), "MR01", "MR"}};
  for (size_t i = 0; i < ws.size(); ++i) {
    auto dump = tmp.write("wl" + std::to_string(i) + ".dump", worklist_dump(ws[i].date, ws[i].station,
                                                                             ws[i].modality, static_cast<int>(i)));
    std::string out;
    auto wl = dir / ("item" + std::to_string(i) + ".wl");
    ASSERT_EQ(test::run_command({"dump2dcm", dump.string(), wl.string()}, &out), 0) << out;
  }
}

TEST(DicomOrthanc, WorklistCountsTodaysItemsForTheStation) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  const char* plugin = "/usr/share/orthanc/plugins/libModalityWorklists.so";
  if (!fs::exists(plugin)) GTEST_SKIP() << "Orthanc worklist plugin not installed";
  TempDir tmp;
  write_worklists(tmp, tmp / "wl");
  if (HasFatalFailure()) return;
  // "Plugins" repeats the support file's empty list; Orthanc's JSON reader keeps the last.
  test::Orthanc orthanc(orthanc_options({std::string("\"Plugins\": [\"") + plugin + "\"]",
                                         "\"Worklists\": {\"Enable\": true, \"Database\": \"" +
                                             (tmp / "wl").string() + "\"}"}));
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto o = target(orthanc.dicom_port(), "ORTHANC");
  o.worklist.keys = {{"ScheduledStationAETitle", "CT01"}, {"ScheduledProcedureStepStartDate", "today"}};
  auto r = run(o, Check::worklist);
  ASSERT_TRUE(r.result.success) << describe(r) << orthanc.log();
  EXPECT_EQ(sample(r.result, "pacs_dicom_worklist_items"), 2.0) << describe(r);
  EXPECT_EQ(sample(r.result, "pacs_dicom_dimse_status"), 0.0);
  o.worklist.keys = {{"Modality", "MR"}};
  EXPECT_EQ(sample(run(o, Check::worklist).result, "pacs_dicom_worklist_items"), 1.0);
}

// dcmtk's worklist SCP: the same counts, and a slow answer is a dimse_timeout.
TEST(DicomWlmscpfs, WorklistCountsAndSlowAnswerIsDimseTimeout) {
  PACS_REQUIRE_PEER("wlmscpfs");
  PACS_REQUIRE_PEER("dump2dcm");
  TempDir tmp;
  write_worklists(tmp, tmp / "db" / "WLSCP");
  if (HasFatalFailure()) return;
  tmp.write("db/WLSCP/lockfile", "");  // wlmscpfs locks the AE directory through it
  int port = test::free_port();
  test::Process scp({"wlmscpfs", "-dfp", (tmp / "db").string(), std::to_string(port)}, tmp / "wlmscpfs.log");
  ASSERT_TRUE(test::wait_for_port(port)) << scp.log();
  auto o = target(port, "WLSCP");
  o.worklist.keys = {{"ScheduledStationAETitle", "CT01"}, {"ScheduledProcedureStepStartDate", "today"}};
  auto r = run(o, Check::worklist);
  ASSERT_TRUE(r.result.success) << describe(r) << scp.log();
  EXPECT_EQ(sample(r.result, "pacs_dicom_worklist_items"), 2.0) << describe(r);

  int slow_port = test::free_port();
  test::Process slow({"wlmscpfs", "--sleep-before", "10", "-dfp", (tmp / "db").string(), std::to_string(slow_port)},
                     tmp / "slow.log");
  ASSERT_TRUE(test::wait_for_port(slow_port)) << slow.log();
  auto s = run(target(slow_port, "WLSCP"), Check::worklist, 1500ms);
  EXPECT_FALSE(s.result.success);
  EXPECT_EQ(s.result.reason, Reason::dimse_timeout) << describe(s);
  EXPECT_LT(s.seconds, 1.5 + 0.5) << describe(s);
  EXPECT_TRUE(sample(s.result, "pacs_dicom_phase_duration_seconds", "associate")) << describe(s);
}

// ---------------------------------------------------------------------------
// Association rejects: result/source/reason exported as PS3.8 values.

void expect_called_ae_reject(const ProbeRun& r) {
  EXPECT_FALSE(r.result.success);
  EXPECT_EQ(r.result.reason, Reason::association_rejected) << describe(r);
  EXPECT_EQ(r.result.message,
            "association rejected: result=1 (permanent) source=1 (service user) reason=0x0107 (called AE title not "
            "recognized)");
  EXPECT_EQ(sample(r.result, "pacs_dicom_association_reject_result"), 1.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_association_reject_source"), 1.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_association_reject_reason"), 7.0);
  EXPECT_TRUE(sample(r.result, "pacs_dicom_phase_duration_seconds", "connect"));
  EXPECT_TRUE(sample(r.result, "pacs_dicom_phase_duration_seconds", "associate"));
  EXPECT_FALSE(sample(r.result, "pacs_dicom_phase_duration_seconds", "dimse"));
  EXPECT_FALSE(sample(r.result, "pacs_dicom_dimse_status"));
}

TEST(DicomReject, WrongCalledAeAtOrthanc) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc(orthanc_options());
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  expect_called_ae_reject(run(target(orthanc.dicom_port(), "NOT_ORTHANC"), Check::echo));
}

TEST(DicomReject, WrongCalledAeAtDcmqrscp) {
  PACS_REQUIRE_PEER("dcmqrscp");
  TempDir tmp;
  int port = test::free_port();
  fs::create_directories(tmp / "db" / "QRSCP");
  auto cfg = tmp.write("dcmqrscp.cfg", "NetworkTCPPort = " + std::to_string(port) +
                                           "\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
                                           "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
                                           "AETable BEGIN\nQRSCP " + (tmp / "db" / "QRSCP").string() +
                                           " RW (100, 64mb) ANY\nAETable END\n");
  test::Process qr({"dcmqrscp", "-c", cfg.string()}, tmp / "dcmqrscp.log");
  ASSERT_TRUE(test::wait_for_port(port)) << qr.log();
  auto ok = run(target(port, "QRSCP"), Check::echo);
  EXPECT_TRUE(ok.result.success) << describe(ok);
  expect_called_ae_reject(run(target(port, "NOT_QRSCP"), Check::echo));
}

TEST(DicomReject, StorescpRefuseIsNoReasonGiven) {
  PACS_REQUIRE_PEER("storescp");
  TempDir tmp;
  int port = test::free_port();
  test::Process scp({"storescp", "--refuse", std::to_string(port)}, tmp / "storescp.log");
  ASSERT_TRUE(test::wait_for_port(port)) << scp.log();
  auto r = run(target(port, "STORESCP"), Check::echo);
  EXPECT_EQ(r.result.reason, Reason::association_rejected) << describe(r);
  EXPECT_EQ(r.result.message,
            "association rejected: result=1 (permanent) source=1 (service user) reason=0x0101 (no reason given)");
  EXPECT_EQ(sample(r.result, "pacs_dicom_association_reject_result"), 1.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_association_reject_source"), 1.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_association_reject_reason"), 1.0);
}

// ---------------------------------------------------------------------------
// Network failures and misbehaving peers.

TEST(DicomFailure, ClosedPortIsConnectionRefused) {
  int port = test::free_port();  // nothing listens there any more
  auto r = run(target(port, "ANY"), Check::echo);
  EXPECT_EQ(r.result.reason, Reason::connection_refused) << describe(r);
  EXPECT_LT(r.seconds, 1.0);
  EXPECT_FALSE(sample(r.result, "pacs_dicom_phase_duration_seconds", "connect"));
}

TEST(DicomFailure, UnresolvableHostIsDnsFailure) {
  auto o = target(104, "ANY");
  o.host = "no-such-host.invalid";
  auto r = run(o, Check::echo, 3s);
  EXPECT_EQ(r.result.reason, Reason::dns_failure) << describe(r);
  EXPECT_LT(r.seconds, 3.0 + 0.5);
  EXPECT_NE(r.result.message.find("no-such-host.invalid"), std::string::npos);
}

TEST(DicomFailure, SilentPeerTimesOutAtTheDeadline) {
  ScriptedPeer peer(ScriptedPeer::Mode::silent);
  auto r = run(target(peer.port(), "ANY"), Check::echo, 1500ms);
  EXPECT_EQ(r.result.reason, Reason::association_timeout) << describe(r);
  EXPECT_LT(r.seconds, 1.5 + 0.5) << describe(r);
  EXPECT_GE(r.seconds, 1.4) << describe(r);
  EXPECT_TRUE(sample(r.result, "pacs_dicom_phase_duration_seconds", "connect"));
}

TEST(DicomFailure, SilentPeerDuringTlsHandshakeTimesOutAtTheDeadline) {
  PACS_REQUIRE_PEER("openssl");
  TempDir tmp;
  std::string out;
  ASSERT_EQ(test::run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                               (tmp / "ca.key").string(), "-out", (tmp / "ca.crt").string(), "-days", "2", "-subj",
                               "/CN=Silent Test CA"},
                              &out),
            0)
      << out;
  ScriptedPeer peer(ScriptedPeer::Mode::silent);
  auto o = target(peer.port(), "ANY");
  o.tls = TlsOptions{(tmp / "ca.crt").string(), "", "", true};
  auto r = run(o, Check::echo, 1500ms);
  EXPECT_EQ(r.result.reason, Reason::association_timeout) << describe(r);
  EXPECT_LT(r.seconds, 1.5 + 0.5) << describe(r);
}

TEST(DicomFailure, FullAcceptQueueIsConnectTimeoutAtTheDeadline) {
  ScriptedPeer peer(ScriptedPeer::Mode::backlog_full);
  // Fill the accept queue (backlog 0 holds one): later SYNs are dropped, so
  // a connect hangs exactly like one to a firewalled host.
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(peer.port()));
    ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(fd);
  }
  std::this_thread::sleep_for(100ms);
  auto r = run(target(peer.port(), "ANY"), Check::echo, 1500ms);
  for (int fd : fillers) ::close(fd);
  EXPECT_EQ(r.result.reason, Reason::connect_timeout) << describe(r);
  EXPECT_LT(r.seconds, 1.5 + 0.5) << describe(r);
}

TEST(DicomFailure, PeerSendingAbortIsAssociationAborted) {
  ScriptedPeer peer(ScriptedPeer::Mode::abort);
  auto r = run(target(peer.port(), "ANY"), Check::echo);
  EXPECT_EQ(r.result.reason, Reason::association_aborted) << describe(r);
  EXPECT_LT(r.seconds, 2.0);
}

TEST(DicomFailure, PeerSendingGarbageIsProtocolError) {
  ScriptedPeer peer(ScriptedPeer::Mode::garbage);
  auto r = run(target(peer.port(), "ANY"), Check::echo, 3s);
  EXPECT_EQ(r.result.reason, Reason::protocol_error) << describe(r);
  EXPECT_LT(r.seconds, 3.0 + 0.5);
}

size_t open_fds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// Every way a run can end gives its sockets back (ours and DCMTK's).
TEST(DicomFailure, NoDescriptorLeaks) {
  size_t before = open_fds();
  {
    ScriptedPeer silent(ScriptedPeer::Mode::silent);
    ScriptedPeer garbage(ScriptedPeer::Mode::garbage);
    ScriptedPeer aborter(ScriptedPeer::Mode::abort);
    int closed = test::free_port();
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(run(target(silent.port(), "A"), Check::echo, 200ms).result.reason, Reason::association_timeout);
      EXPECT_EQ(run(target(garbage.port(), "A"), Check::find, 1s).result.reason, Reason::protocol_error);
      EXPECT_EQ(run(target(aborter.port(), "A"), Check::worklist, 1s).result.reason, Reason::association_aborted);
      EXPECT_EQ(run(target(closed, "A"), Check::echo, 1s).result.reason, Reason::connection_refused);
    }
  }
  EXPECT_EQ(open_fds(), before);
}

// Orthanc aborts a C-FIND from a calling AE it does not know (when it is
// not told to allow everyone): a real peer's A-ABORT after association.
TEST(DicomFailure, OrthancAbortsUnknownCallingAe) {
  PACS_REQUIRE_PEER("Orthanc");
  auto opts = orthanc_options({"\"DicomAlwaysAllowFind\": false"});
  test::Orthanc orthanc(opts);
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto r = run(target(orthanc.dicom_port(), "ORTHANC", "STRANGER"), Check::find);
  EXPECT_FALSE(r.result.success);
  EXPECT_EQ(r.result.reason, Reason::association_aborted) << describe(r);
}

// ---------------------------------------------------------------------------
// DICOM-TLS against Orthanc.

struct Pki {
  TempDir dir;
  fs::path ca, server_crt, server_key, other_ca;
};

void make_pki(Pki& p) {
  auto sh = [&](std::vector<std::string> argv) {
    std::string out;
    ASSERT_EQ(test::run_command(argv, &out), 0) << out;
  };
  auto d = [&](const char* n) { return (p.dir / n).string(); };
  sh({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d("ca.key"), "-out", d("ca.crt"), "-days",
      "30", "-subj", "/CN=pacs-agent test CA"});
  sh({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", d("server.key"), "-out", d("server.csr"), "-subj",
      "/CN=127.0.0.1"});
  sh({"openssl", "x509", "-req", "-in", d("server.csr"), "-CA", d("ca.crt"), "-CAkey", d("ca.key"),
      "-CAcreateserial", "-out", d("server.crt"), "-days", "10"});
  sh({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d("other.key"), "-out", d("other.crt"),
      "-days", "30", "-subj", "/CN=unrelated CA"});
  p.ca = d("ca.crt");
  p.server_crt = d("server.crt");
  p.server_key = d("server.key");
  p.other_ca = d("other.crt");
}

TEST(DicomTls, RightCaSucceedsAndExportsCertExpiryWrongCaFails) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("openssl");
  Pki pki;
  make_pki(pki);
  if (HasFatalFailure()) return;
  test::Orthanc orthanc(orthanc_options({"\"DicomTlsEnabled\": true",
                                         "\"DicomTlsCertificate\": \"" + pki.server_crt.string() + "\"",
                                         "\"DicomTlsPrivateKey\": \"" + pki.server_key.string() + "\"",
                                         "\"DicomTlsTrustedCertificates\": \"" + pki.ca.string() + "\"",
                                         "\"DicomTlsRemoteCertificateRequired\": false"}));
  ASSERT_TRUE(orthanc.start()) << orthanc.log();

  auto o = target(orthanc.dicom_port(), "ORTHANC");
  o.tls = TlsOptions{pki.ca.string(), "", "", true};
  Transcript tls_transcript;
  auto r = run(o, Check::echo, 5s, &tls_transcript);
  ASSERT_TRUE(r.result.success) << describe(r) << orthanc.log();
  // The transcript names the negotiated protocol and the certificate's expiry.
  EXPECT_NE(tls_transcript.text().find("TLS  TLSv1."), std::string::npos) << tls_transcript.text();
  EXPECT_NE(tls_transcript.text().find(", peer certificate expires 20"), std::string::npos) << tls_transcript.text();
  auto expiry = sample(r.result, "pacs_dicom_tls_cert_expiry_timestamp_seconds");
  ASSERT_TRUE(expiry) << describe(r);
  double in_ten_days = static_cast<double>(std::time(nullptr)) + 10 * 86400;
  EXPECT_NEAR(*expiry, in_ten_days, 3600) << "server.crt was made with -days 10";
  EXPECT_TRUE(sample(r.result, "pacs_dicom_phase_duration_seconds", "release"));

  o.tls->ca_file = pki.other_ca.string();
  auto bad = run(o, Check::echo);
  EXPECT_FALSE(bad.result.success);
  EXPECT_EQ(bad.result.reason, Reason::tls_failure) << describe(bad);
  EXPECT_FALSE(sample(bad.result, "pacs_dicom_tls_cert_expiry_timestamp_seconds"));

  // Plain DICOM against the TLS port fails too; TLS against a plain port is a tls_failure.
  o.tls.reset();
  auto plain = run(o, Check::echo, 2s);
  EXPECT_FALSE(plain.result.success) << describe(plain);

  // DCMTK's own messages reached our logger as debug lines, tagged.
  bool routed = false;
  for (const auto& l : captured_lines()) {
    if (l.find("component=dcmtk") != std::string::npos && l.find("level=debug") != std::string::npos) routed = true;
  }
  EXPECT_TRUE(routed) << "no DCMTK log line was routed into our logger";
}

TEST(DicomTls, TlsAgainstPlainPortIsTlsFailure) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("openssl");
  Pki pki;
  make_pki(pki);
  if (HasFatalFailure()) return;
  test::Orthanc orthanc(orthanc_options());
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto o = target(orthanc.dicom_port(), "ORTHANC");
  o.tls = TlsOptions{pki.ca.string(), "", "", true};
  auto r = run(o, Check::echo);
  EXPECT_EQ(r.result.reason, Reason::tls_failure) << describe(r);
}

// Sees DCMTK's raw log events (before our appender's filter), to prove the
// PHI test really had PHI flowing through DCMTK.
class RawDcmtkEvents : public dcmtk::log4cplus::Appender {
 public:
  ~RawDcmtkEvents() override { destructorImpl(); }
  void close() override {}
  std::string text() {
    std::lock_guard lk(mu_);
    return text_;
  }

 protected:
  void append(const dcmtk::log4cplus::spi::InternalLoggingEvent& ev) override {
    std::lock_guard lk(mu_);
    text_ += ev.getMessage().c_str();
    text_ += "\n";
  }

 private:
  std::mutex mu_;
  std::string text_;
};

// ---------------------------------------------------------------------------
// PHI: a stored patient's name and ID appear in no log line, message or
// sample, at debug level, even with DCMTK's loggers forced down to TRACE
// (where it dumps every received dataset).

TEST(DicomPhi, CanaryPatientNeverLeaves) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  test::Orthanc orthanc(orthanc_options());
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  TempDir tmp;
  ASSERT_EQ(orthanc.upload(test::make_dicom_file(tmp / "phi.dcm", "PHI^CANARY", "PHI-CANARY-ID", today())), 200);

  auto o = target(orthanc.dicom_port(), "ORTHANC");
  // Ask for the PHI back as return keys, so the responses really carry it.
  o.find.keys = {{"StudyDate", "today"}, {"PatientName", ""}, {"PatientID", ""}, {"AccessionNumber", ""}};
  size_t lines_before = captured_lines().size();
  auto root = dcmtk::log4cplus::Logger::getRoot();
  auto saved = root.getLogLevel();
  auto* raw = new RawDcmtkEvents;
  dcmtk::log4cplus::SharedAppenderPtr raw_ptr(raw);
  root.addAppender(raw_ptr);
  root.setLogLevel(dcmtk::log4cplus::TRACE_LOG_LEVEL);
  auto r = run(o, Check::find);
  auto w = run(o, Check::echo);
  root.setLogLevel(saved);
  root.removeAppender(raw_ptr);
  ASSERT_TRUE(r.result.success) << describe(r);
  EXPECT_EQ(sample(r.result, "pacs_dicom_find_matches"), 1.0);
  // Control: DCMTK did log details of the received identifiers at
  // DEBUG/TRACE (3.6.7 names the elements, e.g. PatientName, without their
  // values); only our appender's filter keeps those events out of our log.
  EXPECT_NE(raw->text().find("Element (0010,0010) VR=\"PN\" inserted"), std::string::npos)
      << "control failed: DCMTK logged nothing about the response identifiers";
  auto lines = captured_lines();
  for (size_t i = lines_before; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].find("(0010,0010)"), std::string::npos) << "DCMTK debug event reached our log: " << lines[i];
  }
  for (const char* canary : {"PHI^CANARY", "PHI-CANARY-ID", "CANARY"}) {
    for (size_t i = lines_before; i < lines.size(); ++i) {
      EXPECT_EQ(lines[i].find(canary), std::string::npos) << "log line leaks PHI: " << lines[i];
    }
    for (const auto* res : {&r.result, &w.result}) {
      EXPECT_EQ(res->message.find(canary), std::string::npos) << res->message;
      for (const auto& s : res->samples) {
        EXPECT_EQ(s.name.find(canary), std::string::npos);
        for (const auto& [k, v] : s.labels) EXPECT_EQ(v.find(canary), std::string::npos);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Concurrency: probes in parallel threads all succeed, and a hung AE does
// not slow down the others.

TEST(DicomConcurrency, ParallelProbesAgainstOrthancWhileAnotherAeHangs) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc(orthanc_options());
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  ScriptedPeer hung(ScriptedPeer::Mode::silent);
  std::atomic<int> ok{0}, failed{0};
  ProbeRun hung_run;
  std::thread hanger([&] { hung_run = run(target(hung.port(), "HUNG"), Check::echo, 5s); });
  std::vector<std::thread> threads;
  auto t0 = Clock::now();
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        auto r = run(target(orthanc.dicom_port(), "ORTHANC"), (t + i) % 2 ? Check::find : Check::echo);
        (r.result.success ? ok : failed)++;
      }
    });
  }
  for (auto& th : threads) th.join();
  double busy = std::chrono::duration<double>(Clock::now() - t0).count();
  hanger.join();
  EXPECT_EQ(ok.load(), 30);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_LT(busy, 4.5) << "healthy probes waited for the hung one (deadline 5 s)";
  EXPECT_EQ(hung_run.result.reason, Reason::association_timeout) << describe(hung_run);
}

// ---------------------------------------------------------------------------
// Transcripts (/probe?debug=true): every step, in order, and nothing of a
// dataset, a patient or a UID from the peer.

// Every `steps` (substrings) appears in `text`, in this order.
void expect_in_order(const std::string& text, const std::vector<std::string>& steps) {
  size_t pos = 0;
  for (const auto& s : steps) {
    auto at = text.find(s, pos);
    EXPECT_NE(at, std::string::npos) << "missing (or out of order): \"" << s << "\" in\n" << text;
    if (at != std::string::npos) pos = at + s.size();
  }
}

TEST(DicomTranscript, SuccessfulEchoShowsEveryStep) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc(orthanc_options());
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  const std::string port = std::to_string(orthanc.dicom_port());
  Transcript t;
  auto r = run(target(orthanc.dicom_port(), "ORTHANC"), Check::echo, 5s, &t);
  ASSERT_TRUE(r.result.success) << describe(r);
  expect_in_order(t.text(), {"resolve  127.0.0.1 (IP address, no lookup)",
                             "connect  TCP 127.0.0.1:" + port + " in ",
                             "A-ASSOCIATE-RQ  PROBE -> ORTHANC at 127.0.0.1:" + port +
                                 ", 1 presentation context(s): Verification [LittleEndianExplicit "
                                 "LittleEndianImplicit]; our max PDU 16384",
                             "A-ASSOCIATE-AC  accepted: Verification (LittleEndian", "; their max PDU ",
                             "C-ECHO-RQ  message ID 1", "C-ECHO-RSP  status 0x0000 (Success) after ",
                             "A-RELEASE-RQ", "A-RELEASE-RP  in "});
  EXPECT_EQ(t.text().find("result"), std::string::npos) << "no failure step on success";
  // A host name is resolved, and says so.
  auto o = target(orthanc.dicom_port(), "ORTHANC");
  o.host = "localhost";
  Transcript t2;
  ASSERT_TRUE(run(o, Check::echo, 5s, &t2).result.success);
  EXPECT_NE(t2.text().find("resolve  localhost -> 127.0.0.1 in "), std::string::npos) << t2.text();
}

TEST(DicomTranscript, RejectedEchoShowsTheRejectAndNoDimse) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc(orthanc_options());
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  Transcript t;
  auto r = run(target(orthanc.dicom_port(), "NOT_ORTHANC"), Check::echo, 5s, &t);
  ASSERT_EQ(r.result.reason, Reason::association_rejected) << describe(r);
  expect_in_order(t.text(), {"connect  TCP 127.0.0.1:", "A-ASSOCIATE-RQ  PROBE -> NOT_ORTHANC",
                             "A-ASSOCIATE-RJ  result=1 (permanent) source=1 (service user) reason=0x0107 (called AE "
                             "title not recognized)",
                             "result  association_rejected: association rejected: result=1"});
  EXPECT_EQ(t.text().find("C-ECHO-RQ"), std::string::npos) << t.text();
  EXPECT_EQ(t.text().find("A-ASSOCIATE-AC"), std::string::npos) << t.text();
}

TEST(DicomTranscript, TimedOutEchoShowsHowFarItGot) {
  ScriptedPeer peer(ScriptedPeer::Mode::silent);
  Transcript t;
  auto r = run(target(peer.port(), "HUNG"), Check::echo, 1s, &t);
  ASSERT_EQ(r.result.reason, Reason::association_timeout) << describe(r);
  expect_in_order(t.text(), {"resolve  127.0.0.1", "connect  TCP 127.0.0.1:" + std::to_string(peer.port()),
                             "A-ASSOCIATE-RQ  PROBE -> HUNG",
                             "A-ASSOCIATE  association_timeout: no A-ASSOCIATE response from HUNG@127.0.0.1:",
                             "result  association_timeout: "});
  EXPECT_EQ(t.text().find("A-ASSOCIATE-AC"), std::string::npos);
  // A closed port: no connect step at all.
  Transcript t2;
  auto c = run(target(test::free_port(), "ANY"), Check::echo, 1s, &t2);
  ASSERT_EQ(c.result.reason, Reason::connection_refused);
  EXPECT_EQ(t2.text().find("connect  TCP"), std::string::npos) << t2.text();
  EXPECT_NE(t2.text().find("A-ASSOCIATE  connection_refused: "), std::string::npos) << t2.text();
}

TEST(DicomTranscript, FindShowsCountsNeverIdentifiers) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  test::Orthanc orthanc(orthanc_options());
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  TempDir tmp;
  ASSERT_EQ(orthanc.upload(test::make_dicom_file(tmp / "p.dcm", "TRANSCRIPT^PHI", "TRANSCRIPT-PHI-ID", today())), 200);
  auto studies = test::http_get(orthanc.http_port(), "/studies?expand").body;
  auto o = target(orthanc.dicom_port(), "ORTHANC");
  o.find.keys = {{"StudyDate", "today"}, {"PatientName", ""}, {"PatientID", ""}};
  Transcript t;
  auto r = run(o, Check::find, 5s, &t);
  ASSERT_TRUE(r.result.success) << describe(r);
  expect_in_order(t.text(), {"C-FIND-RQ  Study Root, level STUDY, keys: StudyDate, PatientName, PatientID",
                             "C-FIND-RSP  1 pending, final status 0x0000 (Success); first response after "});
  // The study's UID, as Orthanc has it (control: there is one to leak).
  auto key = studies.find("\"StudyInstanceUID\"");
  ASSERT_NE(key, std::string::npos) << studies;
  auto q1 = studies.find('"', studies.find(':', key) + 1);
  std::string uid = studies.substr(q1 + 1, studies.find('"', q1 + 1) - q1 - 1);
  ASSERT_GT(uid.size(), 10u) << studies;
  for (const std::string& phi : {std::string("TRANSCRIPT^PHI"), std::string("TRANSCRIPT-PHI-ID"),
                                std::string("TRANSCRIPT"), uid}) {
    EXPECT_EQ(t.text().find(phi), std::string::npos) << phi << " in\n" << t.text();
  }
}

}  // namespace
}  // namespace pacs::dicom
