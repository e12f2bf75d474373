// http_json and dcm4chee queue probes, and the libcurl client's error
// mapping, against loopback HTTP servers the test controls (dcm4chee itself
// cannot run here; the server answers with the documented JSON shapes).
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "agent/config.h"
#include "probes/log.h"
#include "probes/queue/queue.h"
#include "tests/support/http_test_server.h"
#include "tests/support/probe_testing.h"
#include "tests/support/support.h"

namespace pacs::queue {
namespace {

using namespace std::chrono_literals;
using test::ctx_for;
using test::find_sample;
using test::sample_value;
using test::LoopbackHttpServer;
using test::LoopbackReply;
using test::LoopbackRequest;

class CurlEnv : public ::testing::Environment {
 public:
  void SetUp() override {
    Logger log(LogLevel::error);
    kind().init(log);
  }
  void TearDown() override { kind().shutdown(); }
};
const auto* const kCurlEnv = ::testing::AddGlobalTestEnvironment(new CurlEnv);


std::vector<JsonValueSpec> two_values() { return {{"incoming", "/queues/incoming/depth"}, {"second", "/list/1"}}; }

// ---- http_json ---------------------------------------------------------------

TEST(HttpJson, ReadsNumbersAtPointers) {
  LoopbackHttpServer srv([](const LoopbackRequest& req) {
    EXPECT_EQ(req.target, "/status?x=1");
    EXPECT_EQ(req.headers.count("authorization"), 0u);
    return LoopbackReply::json(R"({"queues":{"incoming":{"depth":7}},"list":[1,2.5],"s":"x"})");
  });
  auto r = HttpJsonProbe(srv.url("/status?x=1"), two_values(), {}).run(ctx_for(5s));
  ASSERT_TRUE(r.success) << r.message;
  EXPECT_EQ(sample_value(r, "pacs_queue_json_value", {{"name", "incoming"}}), 7);
  EXPECT_EQ(sample_value(r, "pacs_queue_json_value", {{"name", "second"}}), 2.5);
  EXPECT_EQ(sample_value(r, "pacs_http_status_code"), 200);
}

TEST(HttpJson, MissingPointerOrNonNumberIsProtocolErrorNamingThePointer) {
  LoopbackHttpServer srv([](const LoopbackRequest&) {
    return LoopbackReply::json(R"({"queues":{"incoming":{"depth":"7"}},"list":[1]})");
  });
  auto r = HttpJsonProbe(srv.url("/"), {{"incoming", "/queues/incoming/depth"}}, {}).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::protocol_error);
  EXPECT_NE(r.message.find("/queues/incoming/depth is a string, not a number"), std::string::npos) << r.message;
  EXPECT_EQ(find_sample(r, "pacs_queue_json_value"), nullptr);

  r = HttpJsonProbe(srv.url("/"), {{"second", "/list/1"}}, {}).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::protocol_error);
  EXPECT_NE(r.message.find("pointer /list/1 not found"), std::string::npos) << r.message;
}

TEST(HttpJson, ServerErrorIsHttpStatusWithCode) {
  LoopbackHttpServer srv([](const LoopbackRequest&) { return LoopbackReply::json("{\"error\":1}", 500); });
  auto r = HttpJsonProbe(srv.url("/"), two_values(), {}).run(ctx_for(5s));
  EXPECT_FALSE(r.success);
  EXPECT_EQ(r.reason, Reason::http_status);
  EXPECT_EQ(sample_value(r, "pacs_http_status_code"), 500);
  EXPECT_NE(r.message.find("HTTP 500"), std::string::npos) << r.message;
}

TEST(HttpJson, MalformedJsonIsProtocolError) {
  LoopbackHttpServer srv([](const LoopbackRequest&) { return LoopbackReply::json("{\"queues\": [1, 2"); });
  auto r = HttpJsonProbe(srv.url("/"), two_values(), {}).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::protocol_error);
  EXPECT_NE(r.message.find("not valid JSON"), std::string::npos) << r.message;
  EXPECT_EQ(sample_value(r, "pacs_http_status_code"), 200);
}

TEST(HttpJson, SilentServerReturnsByDeadline) {
  LoopbackHttpServer srv([](const LoopbackRequest&) { return LoopbackReply::silent(); });
  auto t0 = Clock::now();
  auto r = HttpJsonProbe(srv.url("/"), two_values(), {}).run(ctx_for(500ms));
  auto took = Clock::now() - t0;
  EXPECT_EQ(r.reason, Reason::response_timeout);
  EXPECT_NE(r.message.find("connected, but no complete response before the deadline"), std::string::npos) << r.message;
  EXPECT_LT(took, 1500ms);
  EXPECT_EQ(find_sample(r, "pacs_http_status_code"), nullptr);
}

TEST(HttpJson, NothingListeningIsConnectionRefused) {
  int port = test::free_port();
  auto r = HttpJsonProbe("http://127.0.0.1:" + std::to_string(port) + "/", two_values(), {}).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::connection_refused) << r.message;
}

TEST(HttpJson, FullAcceptQueueIsConnectTimeout) {
  // A listener that never accepts and whose backlog is full: the kernel drops
  // further SYNs, so the TCP connect cannot finish (like a firewalled host).
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 0), 0);
  socklen_t len = sizeof a;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {  // fill the (tiny) accept queue
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(c);
  }
  std::this_thread::sleep_for(100ms);
  auto t0 = Clock::now();
  auto r = HttpJsonProbe("http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/", two_values(), {})
               .run(ctx_for(700ms));
  EXPECT_LT(Clock::now() - t0, 2s);
  for (int c : fillers) ::close(c);
  ::close(lfd);
  EXPECT_EQ(r.reason, Reason::connect_timeout) << r.message;
}

TEST(HttpClient, BasicAuthFromFileOrEnvNeverInMessages) {
  test::TempDir d;
  auto pw = d.write("pw", "s3cret-pass\n");
  LoopbackHttpServer srv([](const LoopbackRequest& req) {
    // base64("agent:s3cret-pass")
    if (req.headers.count("authorization") && req.headers.at("authorization") == "Basic YWdlbnQ6czNjcmV0LXBhc3M=") {
      return LoopbackReply::json(R"({"queues":{"incoming":{"depth":1}},"list":[0,0]})");
    }
    return LoopbackReply::json("{}", 401);
  });
  http::Settings s;
  s.auth.type = http::Auth::Type::basic;
  s.auth.username = "agent";
  s.auth.password_file = pw.string();
  auto r = HttpJsonProbe(srv.url("/"), two_values(), s).run(ctx_for(5s));
  EXPECT_TRUE(r.success) << r.message;

  ::setenv("PACS_TEST_QUEUE_PW", "s3cret-pass", 1);
  s.auth.password_file.clear();
  s.auth.password_env = "PACS_TEST_QUEUE_PW";
  r = HttpJsonProbe(srv.url("/"), two_values(), s).run(ctx_for(5s));
  EXPECT_TRUE(r.success) << r.message;

  ::setenv("PACS_TEST_QUEUE_PW", "wrong-pass", 1);
  r = HttpJsonProbe(srv.url("/"), two_values(), s).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::http_status);
  EXPECT_EQ(sample_value(r, "pacs_http_status_code"), 401);
  EXPECT_EQ(r.message.find("wrong-pass"), std::string::npos) << r.message;
  ::unsetenv("PACS_TEST_QUEUE_PW");

  r = HttpJsonProbe(srv.url("/"), two_values(), s).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::io_error);
  EXPECT_NE(r.message.find("PACS_TEST_QUEUE_PW"), std::string::npos) << r.message;

  s.auth.password_env.clear();
  s.auth.password_file = (d / "missing").string();
  r = HttpJsonProbe(srv.url("/"), two_values(), s).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::io_error);
  EXPECT_NE(r.message.find("No such file"), std::string::npos) << r.message;
  for (const auto& req : srv.requests()) EXPECT_EQ(req.target.find("s3cret"), std::string::npos);
}

TEST(HttpClient, BodyLimitIsProtocolError) {
  LoopbackHttpServer srv([](const LoopbackRequest&) { return LoopbackReply::json(std::string(8192, ' ') + "{}"); });
  http::Settings s;
  s.max_body_bytes = 4096;
  auto r = HttpJsonProbe(srv.url("/"), two_values(), s).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::protocol_error);
  EXPECT_NE(r.message.find("exceeds 4096 bytes"), std::string::npos) << r.message;
}

// A real TLS peer (openssl s_server, self-signed): verification is on by
// default, so the handshake fails; with the certificate as ca_file it passes
// (and the HTML status page is then a protocol_error, not a TLS one).
TEST(HttpClient, TlsVerificationOnByDefault) {
  PACS_REQUIRE_PEER("openssl");
  test::TempDir d;
  auto openssl = *test::find_program("openssl");
  std::string out;
  ASSERT_EQ(test::run_command({openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                               "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                               (d / "key.pem").string(), "-out", (d / "cert.pem").string()},
                              &out),
            0)
      << out;
  int port = test::free_port();
  test::Process server({openssl, "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                        (d / "cert.pem").string(), "-key", (d / "key.pem").string(), "-www", "-quiet"},
                       d / "s_server.log");
  ASSERT_TRUE(test::wait_for_port(port)) << server.log();
  const std::string url = "https://127.0.0.1:" + std::to_string(port) + "/";
  auto r = HttpJsonProbe(url, two_values(), {}).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::tls_failure) << r.message;

  http::Settings s;
  s.tls.ca_file = (d / "cert.pem").string();
  r = HttpJsonProbe(url, two_values(), s).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::protocol_error) << r.message;
  EXPECT_EQ(sample_value(r, "pacs_http_status_code"), 200);

  http::Settings insecure;
  insecure.tls.insecure_skip_verify = true;
  r = HttpJsonProbe(url, two_values(), insecure).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::protocol_error) << r.message;
}

// ---- dcm4chee ------------------------------------------------------------------

// Serves GET /dcm4chee-arc/queue/{name}/count?status={status} -> {"count": N}
// as dcm4chee-arc-light's REST API documents it (responses.json#/countResults).
LoopbackReply dcm4chee_handler(const LoopbackRequest& req, const std::map<std::string, int>& counts) {
  const std::string prefix = "/dcm4chee-arc/queue/";
  if (req.method != "GET" || req.target.rfind(prefix, 0) != 0) return LoopbackReply::json("{}", 404);
  auto rest = req.target.substr(prefix.size());
  auto slash = rest.find("/count?status=");
  if (slash == std::string::npos) return LoopbackReply::json("{}", 400);
  auto key = rest.substr(0, slash) + "|" + rest.substr(slash + 14);
  auto it = counts.find(key);
  if (it == counts.end()) return LoopbackReply::json("{\"errorMessage\":\"No such Queue\"}", 404);
  return LoopbackReply::json("{\"count\":" + std::to_string(it->second) + "}");
}

TEST(Dcm4chee, CountsPerQueueAndStatus) {
  std::map<std::string, int> counts;
  int n = 0;
  for (std::string q : {"StgCmtSCU", "Export1"})
    for (std::string st : {"SCHEDULED", "IN%20PROCESS", "WARNING", "FAILED", "COMPLETED", "CANCELED"})
      counts[q + "|" + st] = ++n;  // distinct numbers, so a swapped status shows
  LoopbackHttpServer srv([&](const LoopbackRequest& req) { return dcm4chee_handler(req, counts); });
  Dcm4cheeQueuesProbe probe(srv.url("/dcm4chee-arc"), {"StgCmtSCU", "Export1"}, {});
  auto r = probe.run(ctx_for(5s));
  ASSERT_TRUE(r.success) << r.message;
  EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"queue", "StgCmtSCU"}, {"state", "scheduled"}}), 1);
  EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"queue", "StgCmtSCU"}, {"state", "in_process"}}), 2);
  EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"queue", "StgCmtSCU"}, {"state", "canceled"}}), 6);
  EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"queue", "Export1"}, {"state", "scheduled"}}), 7);
  EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"queue", "Export1"}, {"state", "failed"}}), 10);
  EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"queue", "Export1"}, {"state", "completed"}}), 11);
  int items = 0;
  for (const auto& s : r.samples) items += s.name == "pacs_queue_items";
  EXPECT_EQ(items, 12);
  EXPECT_EQ(sample_value(r, "pacs_http_status_code"), 200);
  EXPECT_EQ(srv.requests().size(), 12u);
}

TEST(Dcm4chee, UnknownQueueIsHttpStatus404) {
  std::map<std::string, int> counts = {{"Export1|SCHEDULED", 1}};
  LoopbackHttpServer srv([&](const LoopbackRequest& req) { return dcm4chee_handler(req, counts); });
  auto r = Dcm4cheeQueuesProbe(srv.url("/dcm4chee-arc"), {"Nope"}, {}).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::http_status);
  EXPECT_EQ(sample_value(r, "pacs_http_status_code"), 404);
  EXPECT_NE(r.message.find("queue \"Nope\""), std::string::npos) << r.message;
}

TEST(Dcm4chee, ServerErrorMalformedAndSilent) {
  LoopbackHttpServer err([](const LoopbackRequest&) { return LoopbackReply::json("oops", 500); });
  auto r = Dcm4cheeQueuesProbe(err.url("/dcm4chee-arc"), {"Export1"}, {}).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::http_status);
  EXPECT_EQ(sample_value(r, "pacs_http_status_code"), 500);

  LoopbackHttpServer bad([](const LoopbackRequest&) { return LoopbackReply::json("{\"count\": \"many\"}"); });
  r = Dcm4cheeQueuesProbe(bad.url("/dcm4chee-arc"), {"Export1"}, {}).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::protocol_error);
  EXPECT_NE(r.message.find("expected {\"count\": <number>}"), std::string::npos) << r.message;

  LoopbackHttpServer garbage([](const LoopbackRequest&) { return LoopbackReply::json("<html>"); });
  r = Dcm4cheeQueuesProbe(garbage.url("/dcm4chee-arc"), {"Export1"}, {}).run(ctx_for(5s));
  EXPECT_EQ(r.reason, Reason::protocol_error);

  LoopbackHttpServer silent([](const LoopbackRequest&) { return LoopbackReply::silent(); });
  auto t0 = Clock::now();
  r = Dcm4cheeQueuesProbe(silent.url("/dcm4chee-arc"), {"Export1", "Export2"}, {}).run(ctx_for(600ms));
  EXPECT_LT(Clock::now() - t0, 1600ms);
  EXPECT_EQ(r.reason, Reason::response_timeout) << r.message;
}

// ---- config ------------------------------------------------------------------


TEST(QueueConfig, HttpTablesValid) {
  auto cfg = parse_config(R"([[queue]]
name = "vendor"
type = "http_json"
url = "https://pacs.example:8443/api/status"
ca_file = "/etc/pacs/ca.pem"
  [[queue.values]]
  name = "incoming"
  pointer = "/queues/incoming"
  [[queue.values]]
  name = "outgoing"
  pointer = "/queues/outgoing"

[[queue]]
name = "dcm"
type = "dcm4chee"
url = "http://127.0.0.1:8080/dcm4chee-arc/"
queues = ["StgCmtSCU", "Export1"]
username = "monitor"
password_env = "DCM_PW"

[[queue]]
name = "orthanc-jobs"
type = "orthanc"
url = "http://127.0.0.1:8042"
insecure_skip_verify = false
)",
                          "t.toml");
  ASSERT_EQ(cfg->probes.size(), 3u);
  EXPECT_EQ(cfg->probes[0].probe, "queue_http_json");
  EXPECT_EQ(cfg->probes[1].probe, "queue_dcm4chee");
  EXPECT_EQ(cfg->probes[2].probe, "queue_orthanc");
  for (const auto& p : cfg->probes) EXPECT_EQ(p.reasons, http_reasons());
}

TEST(QueueConfig, HttpTableErrors) {
  const std::string j = "[[queue]]\nname = \"q\"\ntype = \"http_json\"\n";
  const std::string vals = "values = [{ name = \"a\", pointer = \"/a\" }]\n";
  test::expect_config_error(j + vals, "t.toml:1: queue[0]: missing required key \"url\"");
  test::expect_config_error(j + "url = \"ftp://x/\"\n" + vals, "t.toml:4: queue[0].url: must be an http:// or https:// URL");
  test::expect_config_error(j + "url = \"http://u:p@x/\"\n" + vals,
                      "t.toml:4: queue[0].url: must not contain credentials; use username with password_file or "
                      "password_env");
  test::expect_config_error(j + "url = \"http://x/\"\n", "t.toml:1: queue[0]: missing required key \"values\"");
  test::expect_config_error(j + "url = \"http://x/\"\nvalues = [{ name = \"a\", pointer = \"a/b\" }]\n",
                      "t.toml:5: queue[0].values[0].pointer: invalid JSON pointer \"a/b\" (RFC 6901, e.g. "
                      "\"/queues/0/depth\")");
  test::expect_config_error(j + "url = \"http://x/\"\nvalues = [{ name = \"a\", pointer = \"/a\" }, { name = \"a\", "
                          "pointer = \"/b\" }]\n",
                      "t.toml:5: queue[0].values[1].name: duplicate value name \"a\"");
  test::expect_config_error(j + "url = \"http://x/\"\n" + vals + "username = \"u\"\n",
                      "t.toml:6: queue[0].username: needs password_file or password_env (passwords are never "
                      "written in the config)");
  test::expect_config_error(j + "url = \"http://x/\"\n" + vals + "password = \"p\"\n", "t.toml:6: queue[0].password: unknown key");
  const std::string d = "[[queue]]\nname = \"q\"\ntype = \"dcm4chee\"\nurl = \"http://x/dcm4chee-arc\"\n";
  test::expect_config_error(d, "t.toml:1: queue[0]: missing required key \"queues\"");
  test::expect_config_error(d + "queues = []\n",
                      "t.toml:5: queue[0].queues: must name at least one queue (e.g. [\"StgCmtSCU\", \"Export1\"])");
}

TEST(QueueConfig, SampleTomlParses) {
  std::ifstream in(std::string(PACS_SOURCE_DIR) + "/probes/queue/sample.toml");
  ASSERT_TRUE(in) << "probes/queue/sample.toml missing";
  std::stringstream ss;
  ss << in.rdbuf();
  auto cfg = parse_config(ss.str(), "probes/queue/sample.toml");
  std::set<std::string> kinds;
  for (const auto& p : cfg->probes) kinds.insert(p.probe);
  EXPECT_EQ(kinds, (std::set<std::string>{"queue_directory", "queue_orthanc", "queue_dcm4chee", "queue_http_json"}));
}

}  // namespace
}  // namespace pacs::queue
