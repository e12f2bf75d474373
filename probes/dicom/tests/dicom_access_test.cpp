// The access-control canary (check "access") against real peers on
// 127.0.0.1: Orthanc refusing unknown calling AE titles at the association
// (every DicomAlwaysAllow* false) and at the C-ECHO (DicomAlwaysAllowEcho
// false only), Orthanc accepting them (its defaults for echo), dcmqrscp with
// an AETable that names its peers, and PACSs that do not answer at all.
// Every refusal comes with a control: the registered AE title is let in by
// the same peer, so the refusal is access control, not a broken peer.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "probes/dicom/dicom_probe.h"
#include "probes/log.h"
#include "tests/support/support.h"

namespace pacs::dicom {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::TempDir;

Logger& test_logger() {
  static Logger log(LogLevel::info, [](std::string_view) {});
  return log;
}

class DicomEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { global_init(test_logger()); }
  void TearDown() override { global_shutdown(); }
};
[[maybe_unused]] const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new DicomEnvironment);

DicomOptions target(int port, const std::string& called, const std::string& calling = "PROBE") {
  DicomOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.called_ae_title = called;
  o.calling_ae_title = calling;
  return o;
}

struct Run {
  ProbeResult result;
  std::string transcript;
};

Run run(const DicomOptions& o, Check c, Duration timeout = 5s) {
  DicomProbe p(o, c);
  Transcript t;
  ProbeContext ctx;
  ctx.deadline = Clock::now() + timeout;
  ctx.log = &test_logger();
  ctx.transcript = &t;
  Run r{p.run(ctx), {}};
  r.transcript = t.text();
  return r;
}

std::optional<double> sample(const ProbeResult& r, const std::string& name) {
  for (const auto& s : r.samples)
    if (s.name == name) return s.value;
  return std::nullopt;
}

std::string describe(const Run& r) {
  std::string s = "success=" + std::to_string(r.result.success) + " reason=" + std::string(to_string(r.result.reason)) +
                  " message=\"" + r.result.message + "\" samples:";
  for (const auto& x : r.result.samples) s += " " + x.name + "=" + std::to_string(x.value);
  return s + "\n" + r.transcript;
}

// The calling AE title the run used, as its transcript's A-ASSOCIATE-RQ shows it.
std::string stranger_of(const Run& r) {
  std::smatch m;
  static const std::regex rq("A-ASSOCIATE-RQ  (\\S+) -> ");
  return std::regex_search(r.transcript, m, rq) ? m[1].str() : std::string();
}

// Every refusal/acceptance run: the title is fresh, prefixed, 16 characters,
// and is in no label.
void expect_stranger(const Run& r, const std::string& prefix = "PACSAGENT-") {
  const std::string t = stranger_of(r);
  ASSERT_EQ(t.size(), 16u) << describe(r);
  EXPECT_EQ(t.rfind(prefix, 0), 0u) << t;
  EXPECT_NE(r.transcript.find("access canary  calling AE title " + t), std::string::npos) << r.transcript;
  for (const auto& s : r.result.samples)
    for (const auto& [k, v] : s.labels) EXPECT_EQ(v.find(t), std::string::npos) << s.name << " " << k << "=" << v;
}

constexpr const char* kAllowNothing[] = {
    "\"DicomAlwaysAllowEcho\": false", "\"DicomAlwaysAllowStore\": false", "\"DicomAlwaysAllowFind\": false",
    "\"DicomAlwaysAllowFindWorklist\": false", "\"DicomAlwaysAllowGet\": false", "\"DicomAlwaysAllowMove\": false"};

test::Orthanc::Options orthanc_options(std::vector<std::string> extra) {
  test::Orthanc::Options o;
  o.aet = "ORTHANC";
  o.modalities["probe"] = {"PROBE", "127.0.0.1", 104};
  o.extra_json = std::move(extra);  // later members win over the defaults written before them
  return o;
}

// (a) Orthanc that lets in only the modalities it knows: the stranger's
// association is rejected (1/1/3), two runs use two different titles (both
// in Orthanc's own log), and the registered title is let in.
TEST(DicomAccess, OrthancKnowingOnlyItsModalitiesRejectsTheStranger) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc(orthanc_options({std::begin(kAllowNothing), std::end(kAllowNothing)}));
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  const auto o = target(orthanc.dicom_port(), "ORTHANC");

  auto known = run(o, Check::echo);  // control: the same peer, a title it knows
  ASSERT_TRUE(known.result.success) << describe(known);

  auto first = run(o, Check::access);
  EXPECT_TRUE(first.result.success) << describe(first);
  EXPECT_EQ(first.result.reason, Reason::none);
  EXPECT_EQ(sample(first.result, "pacs_dicom_access_refused"), 1.0) << describe(first);
  EXPECT_EQ(sample(first.result, "pacs_dicom_association_reject_result"), 1.0);
  EXPECT_EQ(sample(first.result, "pacs_dicom_association_reject_source"), 1.0);
  EXPECT_EQ(sample(first.result, "pacs_dicom_association_reject_reason"), 3.0);  // calling AE title not recognized
  EXPECT_EQ(first.result.message,
            "unknown calling AE title refused: association rejected: result=1 (permanent) source=1 (service user) "
            "reason=0x0103 (calling AE title not recognized)");
  EXPECT_NE(first.transcript.find("A-ASSOCIATE-RJ"), std::string::npos) << first.transcript;
  EXPECT_EQ(first.transcript.find("C-ECHO-RQ"), std::string::npos) << first.transcript;
  expect_stranger(first);

  auto second = run(o, Check::access);
  EXPECT_TRUE(second.result.success) << describe(second);
  expect_stranger(second);
  EXPECT_NE(stranger_of(first), stranger_of(second)) << "the title must be new every run";
  // Orthanc saw both, by name: the titles really went over the wire.
  const std::string log = orthanc.log();
  for (const auto& t : {stranger_of(first), stranger_of(second)}) {
    EXPECT_NE(log.find("Rejected association for remote AET " + t), std::string::npos) << t << "\n" << log;
  }
}

// (a') Orthanc that lets everyone associate (DicomAlwaysAllowStore) but not
// echo: it aborts the association at the stranger's C-ECHO. The known title
// still gets its echo answered.
TEST(DicomAccess, OrthancRefusingTheStrangersEchoAbortsAndThatIsARefusal) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc(orthanc_options({"\"DicomAlwaysAllowEcho\": false"}));
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  const auto o = target(orthanc.dicom_port(), "ORTHANC");
  auto known = run(o, Check::echo);
  ASSERT_TRUE(known.result.success) << describe(known);

  auto r = run(o, Check::access);
  EXPECT_TRUE(r.result.success) << describe(r);
  EXPECT_EQ(sample(r.result, "pacs_dicom_access_refused"), 1.0);
  EXPECT_FALSE(sample(r.result, "pacs_dicom_association_reject_result")) << "associated, not rejected";
  EXPECT_EQ(r.result.message.rfind("unknown calling AE title refused: association accepted, then aborted at the "
                                   "C-ECHO",
                                   0),
            0u)
      << r.result.message;
  EXPECT_NE(r.transcript.find("A-ASSOCIATE-AC"), std::string::npos) << r.transcript;
  EXPECT_NE(r.transcript.find("C-ECHO-RQ"), std::string::npos) << r.transcript;
  expect_stranger(r);
  EXPECT_NE(orthanc.log().find("Rejected Echo request from remote DICOM modality with AET \"" + stranger_of(r)),
            std::string::npos)
      << orthanc.log();
}

// (b) Orthanc with DicomAlwaysAllowEcho (its default) answers anyone:
// access_not_enforced, with the title in the message (for the audit log)
// and in no label.
TEST(DicomAccess, OrthancAnsweringEveryoneFailsWithAccessNotEnforced) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc(orthanc_options({}));
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  const auto o = target(orthanc.dicom_port(), "ORTHANC");
  auto r = run(o, Check::access);
  EXPECT_FALSE(r.result.success) << describe(r);
  EXPECT_EQ(r.result.reason, Reason::access_not_enforced) << describe(r);
  EXPECT_EQ(sample(r.result, "pacs_dicom_access_refused"), 0.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_dimse_status"), 0.0);
  expect_stranger(r);
  EXPECT_NE(r.result.message.find("\"" + stranger_of(r) + "\""), std::string::npos) << r.result.message;
  EXPECT_NE(r.transcript.find("C-ECHO-RSP  status 0x0000 (Success)"), std::string::npos) << r.transcript;
  EXPECT_NE(r.transcript.find("A-RELEASE-RP"), std::string::npos) << "released politely\n" << r.transcript;
  // The prefix is configurable and shows in the title.
  auto p = o;
  p.access.calling_ae_prefix = "AUDIT-";
  auto q = run(p, Check::access);
  EXPECT_EQ(q.result.reason, Reason::access_not_enforced) << describe(q);
  expect_stranger(q, "AUDIT-");
}

// dcmqrscp with an AETable that names its peers (HostTable): a stranger is
// rejected — with reason 7, "called AE title not recognized", dcmqrscp's
// way of saying "not for you" — and the listed peer is let in.
TEST(DicomAccess, DcmqrscpWithAPeerListRejectsTheStranger) {
  PACS_REQUIRE_PEER("dcmqrscp");
  TempDir tmp;
  int port = test::free_port();
  fs::create_directories(tmp / "db" / "QRSCP");
  // dcmqrscp compares the peer's reverse-resolved host name: 127.0.0.1 is "localhost".
  auto cfg = tmp.write("dcmqrscp.cfg", "NetworkTCPPort = " + std::to_string(port) +
                                           "\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
                                           "HostTable BEGIN\nprobe = (PROBE, localhost, 104)\nHostTable END\n"
                                           "VendorTable BEGIN\nVendorTable END\n"
                                           "AETable BEGIN\nQRSCP " + (tmp / "db" / "QRSCP").string() +
                                           " RW (100, 64mb) probe\nAETable END\n");
  test::Process qr({"dcmqrscp", "-c", cfg.string()}, tmp / "dcmqrscp.log");
  ASSERT_TRUE(test::wait_for_port(port)) << qr.log();
  const auto o = target(port, "QRSCP");
  auto known = run(o, Check::echo);
  ASSERT_TRUE(known.result.success) << describe(known);
  auto r = run(o, Check::access);
  EXPECT_TRUE(r.result.success) << describe(r);
  EXPECT_EQ(sample(r.result, "pacs_dicom_access_refused"), 1.0);
  EXPECT_EQ(sample(r.result, "pacs_dicom_association_reject_reason"), 7.0) << describe(r);
  expect_stranger(r);

  // Control: the same dcmqrscp with ANY peer answers the stranger.
  int open_port = test::free_port();
  fs::create_directories(tmp / "db2" / "QRSCP");
  auto open_cfg = tmp.write("open.cfg", "NetworkTCPPort = " + std::to_string(open_port) +
                                            "\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
                                            "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
                                            "AETable BEGIN\nQRSCP " + (tmp / "db2" / "QRSCP").string() +
                                            " RW (100, 64mb) ANY\nAETable END\n");
  test::Process open_qr({"dcmqrscp", "-c", open_cfg.string()}, tmp / "open.log");
  ASSERT_TRUE(test::wait_for_port(open_port)) << open_qr.log();
  auto a = run(target(open_port, "QRSCP"), Check::access);
  EXPECT_EQ(a.result.reason, Reason::access_not_enforced) << describe(a);
}

// A PACS that does not answer proves nothing about its access control: the
// run fails with the network's reason, and no refusal gauge is exported.
TEST(DicomAccess, UnreachablePacsFailsWithTheNetworkReason) {
  auto closed = run(target(test::free_port(), "ANY"), Check::access, 1s);
  EXPECT_FALSE(closed.result.success);
  EXPECT_EQ(closed.result.reason, Reason::connection_refused) << describe(closed);
  EXPECT_FALSE(sample(closed.result, "pacs_dicom_access_refused"));

  // A peer that accepts TCP and never speaks: association_timeout.
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  ::listen(lfd, 4);
  auto silent = run(target(ntohs(a.sin_port), "HUNG"), Check::access, 1s);
  ::close(lfd);
  EXPECT_EQ(silent.result.reason, Reason::association_timeout) << describe(silent);
  EXPECT_FALSE(sample(silent.result, "pacs_dicom_access_refused"));
}

}  // namespace
}  // namespace pacs::dicom
