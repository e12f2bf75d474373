// The hl7 probe against real peers on 127.0.0.1: an independent MLLP
// listener (npm node-hl7-server, scripted per message by MSH-5), scripted raw
// TCP peers for garbage and broken framing, a closed port, an unknown host,
// MLLP over TLS; and the built agent answering /probe for an hl7 target.
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "probes/hl7/hl7.h"
#include "probes/log.h"
#include "probes/hl7/tests/raw_tcp_peer.h"
#include "tests/support/probe_testing.h"
#include "tests/support/support.h"

namespace pacs::hl7 {
namespace {

using namespace std::chrono_literals;
using test::ctx_for;
using test::find_sample;
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

// node-hl7-server, installed under the build tree by this folder's CMake step.
class NodeMllpPeer {
 public:
  explicit NodeMllpPeer(const test::TempDir& dir, const std::string& cert = "", const std::string& key = "")
      : port_(test::free_port()) {
    std::vector<std::string> argv = {"node", std::string(PACS_SOURCE_DIR) + "/probes/hl7/tests/mllp_peer.js",
                                     std::to_string(port_)};
    if (!cert.empty()) argv.insert(argv.end(), {cert, key});
    proc_ = std::make_unique<test::Process>(argv, dir / ("mllp-peer-" + std::to_string(port_) + ".log"),
                                            std::map<std::string, std::string>{{"NODE_PATH", PACS_HL7_NODE_MODULES}});
  }
  bool wait_ready() { return test::wait_for_port(port_, 20s); }
  int port() const { return port_; }
  std::string log() const { return proc_->log(); }

 private:
  int port_;
  std::unique_ptr<test::Process> proc_;
};

Options target(int port, const std::string& script) {
  Options o;
  o.host = "127.0.0.1";
  o.port = port;
  o.receiving_application = script;  // the peer answers as MSH-5 says
  o.message_type = "ADT^A08";
  return o;
}

struct Run {
  ProbeResult result;
  double seconds = 0;
  std::string transcript;
};

Run run(const Options& o, Duration timeout = 5s) {
  Transcript t;
  auto ctx = ctx_for(timeout);
  ctx.transcript = &t;
  auto start = Clock::now();
  Run r;
  r.result = Hl7Probe(o).run(ctx);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.transcript = t.text();
  return r;
}

std::string describe(const Run& r) {
  return std::string(to_string(r.result.reason)) + ": " + r.result.message + "\n" + r.transcript;
}

// The control ID the probe wrote into its transcript ("control ID PA...").
std::string sent_control_id(const std::string& transcript) {
  auto p = transcript.find("control ID PA");
  return p == std::string::npos ? "" : transcript.substr(p + 11, 18);
}

class Hl7Peer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::find_program("node")) return;
    dir_ = new test::TempDir;
    peer_ = new NodeMllpPeer(*dir_);
    ready_ = peer_->wait_ready();
  }
  static void TearDownTestSuite() {
    delete peer_;
    delete dir_;
    peer_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override {
    PACS_REQUIRE_PEER("node");
    ASSERT_TRUE(ready_) << peer_->log();
  }
  static int port() { return peer_->port(); }
  static std::string peer_log() { return peer_->log(); }
  static inline test::TempDir* dir_ = nullptr;
  static inline NodeMllpPeer* peer_ = nullptr;
  static inline bool ready_ = false;
};

TEST_F(Hl7Peer, ApplicationAcceptIsSuccess) {
  auto r = run(target(port(), "AA"));
  ASSERT_TRUE(r.result.success) << describe(r);
  EXPECT_EQ(sample_value(r.result, "pacs_hl7_ack_code", {{"code", "AA"}}), 1);
  for (const char* c : {"AE", "AR", "CA", "CE", "CR"}) EXPECT_EQ(sample_value(r.result, "pacs_hl7_ack_code", {{"code", c}}), 0);
  EXPECT_GT(sample_value(r.result, "pacs_hl7_round_trip_seconds"), 0);
  EXPECT_GT(sample_value(r.result, "pacs_hl7_connect_seconds"), 0);
  EXPECT_FALSE(find_sample(r.result, "pacs_hl7_tls_cert_expiry_timestamp_seconds"));
  // The control: the peer really received this run's message, as configured.
  const std::string id = sent_control_id(r.transcript);
  ASSERT_EQ(id.size(), 18u) << r.transcript;
  std::string line;
  for (auto deadline = Clock::now() + 10s; Clock::now() < deadline; std::this_thread::sleep_for(20ms)) {
    std::istringstream in(peer_log());
    for (std::string l; std::getline(in, l);)
      if (l.find(id) != std::string::npos) line = l;
    if (!line.empty()) break;
  }
  ASSERT_FALSE(line.empty()) << peer_log();
  EXPECT_NE(line.find("\"received\":\"ADT^A08\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"processing_id\":\"T\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"version\":\"2.5.1\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"patient_id\":\"PACS-AGENT-CANARY\""), std::string::npos) << line;
  // Transcript: connect, message sent (type, control ID), ACK (MSA-1).
  EXPECT_NE(r.transcript.find("connected  127.0.0.1:" + std::to_string(port())), std::string::npos) << r.transcript;
  EXPECT_NE(r.transcript.find("message sent  ADT^A08 control ID " + id), std::string::npos) << r.transcript;
  EXPECT_NE(r.transcript.find("ACK  MSA-1 AA, control ID matches"), std::string::npos) << r.transcript;
}

TEST_F(Hl7Peer, ApplicationErrorAndRejectAreNegativeAckWithTheCode) {
  for (std::string code : {"AE", "AR"}) {
    auto r = run(target(port(), code));
    EXPECT_EQ(r.result.reason, Reason::negative_ack) << describe(r);
    EXPECT_EQ(sample_value(r.result, "pacs_hl7_ack_code", {{"code", code}}), 1) << code;
    EXPECT_EQ(sample_value(r.result, "pacs_hl7_ack_code", {{"code", "AA"}}), 0) << code;
    EXPECT_NE(r.result.message.find(code), std::string::npos) << r.result.message;
    EXPECT_NE(r.transcript.find("ACK  MSA-1 " + code), std::string::npos) << r.transcript;
  }
}

TEST_F(Hl7Peer, AcknowledgementForAnotherControlIdIsProtocolError) {
  auto r = run(target(port(), "WRONG_ID"));
  EXPECT_EQ(r.result.reason, Reason::protocol_error) << describe(r);
  EXPECT_NE(r.result.message.find("MSA-2"), std::string::npos) << r.result.message;
  EXPECT_EQ(r.result.message.find("NOT-YOUR-MESSAGE"), std::string::npos) << "the peer's data is never echoed";
}

TEST_F(Hl7Peer, SilenceIsResponseTimeoutWithinDeadline) {
  auto r = run(target(port(), "SILENT"), 1500ms);
  EXPECT_EQ(r.result.reason, Reason::response_timeout) << describe(r);
  EXPECT_LT(r.seconds, 1.5 + 0.5) << describe(r);
  EXPECT_GT(r.seconds, 1.4);
  EXPECT_FALSE(find_sample(r.result, "pacs_hl7_ack_code"));
}

TEST_F(Hl7Peer, ConfiguredSegmentsAndVersionReachThePeer) {
  auto o = target(port(), "AA");
  o.version = "2.3";
  o.message_type = "ORM^O01";
  o.processing_id = "D";
  o.segments = {"PID|1||SEG-TEST-ID^^^PACS_AGENT||ZZ_TEST^SEGMENTS", "ORC|NW|{now}"};
  auto r = run(o);
  ASSERT_TRUE(r.result.success) << describe(r);
  const std::string id = sent_control_id(r.transcript);
  std::string line;
  for (auto deadline = Clock::now() + 10s; Clock::now() < deadline && line.empty(); std::this_thread::sleep_for(20ms)) {
    std::istringstream in(peer_log());
    for (std::string l; std::getline(in, l);)
      if (l.find(id) != std::string::npos) line = l;
  }
  EXPECT_NE(line.find("\"received\":\"ORM^O01\""), std::string::npos) << peer_log();
  EXPECT_NE(line.find("\"processing_id\":\"D\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"version\":\"2.3\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"patient_id\":\"SEG-TEST-ID\""), std::string::npos) << line;
}

TEST(Hl7, NothingListeningIsConnectionRefused) {
  auto r = run(target(test::free_port(), "AA"));
  EXPECT_EQ(r.result.reason, Reason::connection_refused) << describe(r);
}

TEST(Hl7, UnknownHostIsDnsFailure) {
  auto o = target(2575, "AA");
  o.host = "no-such-host.invalid";
  auto r = run(o, 3s);
  EXPECT_EQ(r.result.reason, Reason::dns_failure) << describe(r);
  EXPECT_LT(r.seconds, 3.0 + 0.5);
}

TEST(Hl7, GarbageIsProtocolError) {
  test::RawTcpPeer garbage("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
  auto r = run(target(garbage.port(), "AA"));
  EXPECT_EQ(r.result.reason, Reason::protocol_error) << describe(r);
  EXPECT_GT(garbage.last_received_bytes(), 50u) << "the message never reached the peer";
}

TEST(Hl7, BrokenFramingOrNoAcknowledgementIsProtocolError) {
  const std::string ack = "MSH|^~\\&|RIS||PACS_AGENT||20240101120000||ACK^A08|X1|T|2.5.1\rMSA|AA|X1\r";
  struct Case {
    const char* what;
    std::string reply;
  } cases[] = {
      {"no start byte", ack + "\x1c\r"},
      {"end byte without CR", "\x0b" + ack + "\x1cX"},
      {"no MSH", "\x0bHELLO|x\rMSA|AA|X1\r\x1c\r"},
      {"no MSA", "\x0bMSH|^~\\&|RIS||PACS_AGENT||20240101||ACK^A08|X1|T|2.5.1\r\x1c\r"},
      {"unknown code", "\x0bMSH|^~\\&|RIS||PACS_AGENT||20240101||ACK^A08|X1|T|2.5.1\rMSA|ZZ|X1\r\x1c\r"},
      {"closed inside the frame", "\x0bMSH|^~\\&|RIS"},
  };
  for (const auto& c : cases) {
    test::RawTcpPeer peer(c.reply);
    auto r = run(target(peer.port(), "AA"), 3s);
    EXPECT_EQ(r.result.reason, Reason::protocol_error) << c.what << ": " << describe(r);
    EXPECT_LT(r.seconds, 2.5) << c.what << " waited for the deadline: " << describe(r);
  }
}

TEST(Hl7, ClosedWithoutAnswerIsConnectionReset) {
  test::RawTcpPeer closer("");
  auto r = run(target(closer.port(), "AA"));
  EXPECT_EQ(r.result.reason, Reason::connection_reset) << describe(r);
}

// MLLP over TLS against node-hl7-server with a certificate for 127.0.0.1:
// verified with the right CA (expiry exported), refused with another CA.
TEST(Hl7Tls, VerifiedWithTheRightCaOnly) {
  PACS_REQUIRE_PEER("node");
  PACS_REQUIRE_PEER("openssl");
  test::TempDir d;
  std::string out;
  auto cert = [&](const std::string& name, int days) {
    return test::run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", std::to_string(days),
                              "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                              (d / (name + ".key")).string(), "-out", (d / (name + ".crt")).string()},
                             &out);
  };
  ASSERT_EQ(cert("server", 30), 0) << out;
  ASSERT_EQ(cert("other", 30), 0) << out;
  NodeMllpPeer peer(d, (d / "server.crt").string(), (d / "server.key").string());
  ASSERT_TRUE(peer.wait_ready()) << peer.log();

  auto o = target(peer.port(), "AA");
  o.tls = http::Tls{};
  o.tls->ca_file = (d / "server.crt").string();
  auto r = run(o);
  ASSERT_TRUE(r.result.success) << describe(r);
  double expiry = sample_value(r.result, "pacs_hl7_tls_cert_expiry_timestamp_seconds");
  double in_days = (expiry - static_cast<double>(std::time(nullptr))) / 86400;
  EXPECT_GT(in_days, 29);
  EXPECT_LT(in_days, 31);
  EXPECT_NE(r.transcript.find("TLS  TLS handshake done"), std::string::npos) << r.transcript;

  o.tls->ca_file = (d / "other.crt").string();
  r = run(o);
  EXPECT_EQ(r.result.reason, Reason::tls_failure) << describe(r);
}

// The built agent: /probe?target=NAME runs the hl7 check now; a negative
// acknowledgement is HTTP 200 with probe_success 0 and its reason.
TEST(Hl7Agent, ProbeEndpointRunsHl7Targets) {
  PACS_REQUIRE_PEER("node");
  test::TempDir dir;
  NodeMllpPeer peer(dir);
  ASSERT_TRUE(peer.wait_ready()) << peer.log();
  int agent_port = test::free_port();
  auto hl7_target = [&](const std::string& name, const std::string& script) {
    return "[[hl7]]\nname = \"" + name + "\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(peer.port()) +
           "\nreceiving_application = \"" + script + "\"\nmessage_type = \"ADT^A08\"\ninterval = \"1h\"\ntimeout = \"5s\"\n\n";
  };
  auto cfg = dir.write("agent.toml", hl7_target("ris-adt", "AA") + hl7_target("ris-broken", "AE"));
  test::Process agent({test::agent_binary(), "--config.file=" + cfg.string(),
                       "--web.listen-address=127.0.0.1:" + std::to_string(agent_port)},
                      dir / "agent.log");
  ASSERT_TRUE(test::wait_for_port(agent_port, 10s)) << agent.log();

  auto ok = test::http_get(agent_port, "/probe?target=ris-adt");
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(test::metric_value(ok.body, "probe_success"), 1.0) << ok.body;
  EXPECT_EQ(test::metric_value(ok.body, "pacs_hl7_ack_code{probe=\"hl7\",target=\"ris-adt\",code=\"AA\"}"), 1.0) << ok.body;
  EXPECT_TRUE(test::metric_value(ok.body, "pacs_hl7_round_trip_seconds{probe=\"hl7\",target=\"ris-adt\"}")) << ok.body;

  auto bad = test::http_get(agent_port, "/probe?target=ris-broken&check=hl7");
  EXPECT_EQ(bad.status, 200) << bad.body;
  EXPECT_EQ(test::metric_value(bad.body, "probe_success"), 0.0) << bad.body;
  EXPECT_EQ(test::metric_value(bad.body, "pacs_probe_result_info{probe=\"hl7\",target=\"ris-broken\",reason=\"negative_ack\"}"), 1.0)
      << bad.body;
  EXPECT_EQ(test::metric_value(bad.body, "pacs_hl7_ack_code{probe=\"hl7\",target=\"ris-broken\",code=\"AE\"}"), 1.0) << bad.body;

  EXPECT_EQ(test::http_get(agent_port, "/probe?target=no-such").status, 400);
}

}  // namespace
}  // namespace pacs::hl7
