// The built pacs-agent binary under the conditions a hospital network and a
// night-shift admin produce: spools named after patients, a dead mount,
// signals at awkward moments, a process out of file descriptors, a rotated
// password, proxies in the environment, tokens in URLs.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <thread>

#include "tests/support/dead_mount.h"
#include "tests/support/http_test_server.h"
#include "tests/support/loopback_clients.h"
#include "tests/support/support.h"

namespace pacs::test {
namespace {
using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Agent {
  // `prefix`: run the agent under it (e.g. setpriv to drop to nobody).
  // `ready_status`: what /-/ready answers once serving (401 with basic auth).
  Agent(const TempDir& dir, const fs::path& config, std::vector<std::string> extra = {},
        std::vector<std::string> prefix = {}, std::map<std::string, std::string> env = {}, int ready_status = 200)
      : port(free_port()) {
    std::vector<std::string> argv = prefix;
    argv.push_back(agent_binary());
    argv.push_back("--config.file=" + config.string());
    argv.push_back("--web.listen-address=127.0.0.1:" + std::to_string(port));
    argv.push_back("--log.level=debug");
    for (auto& e : extra) argv.push_back(e);
    log_file = dir / ("agent-" + std::to_string(port) + ".log");
    proc = std::make_unique<Process>(argv, log_file, env);
    ready = wait_for_http(port, "/-/ready", ready_status);
  }
  std::string get(const std::string& target) { return http_get(port, target).body; }
  int port;
  fs::path log_file;
  std::unique_ptr<Process> proc;
  bool ready = false;
};

// True when the agent binary contains `text` (e.g. a sanitizer's symbol).
bool agent_binary_contains(const std::string& text) {
  std::ifstream bin(agent_binary(), std::ios::binary | std::ios::ate);
  std::string bytes(static_cast<size_t>(bin.tellg()), '\0');
  bin.seekg(0);
  bin.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes.find(text) != std::string::npos;
}

// Polls until `pred` holds.
bool eventually(const std::function<bool()>& pred, std::chrono::seconds limit = 30s) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// ---------------------------------------------------------------------------
// PHI in file names.

TEST(AgentHardening, PatientNamedUnreadableSpoolEntriesAreNamedNowhere) {
  TempDir dir;
  const std::string patient = "DOE^JOHN_19700101_CANARY";
  const std::string study = "SMITH^JANE_CANARY";
  const std::string file = "1.2.840.113619.2.55.CANARY.dcm";
  auto spool = dir / "spool";
  fs::create_directories(spool / patient);
  fs::create_directories(spool / study);
  std::ofstream(spool / "waiting.dcm") << "x";
  std::ofstream(spool / patient / "a.dcm") << "x";
  std::ofstream(spool / study / file) << "x";
  // The agent runs as nobody: it may list the spool, not enter the patient
  // folder, and list but not search the study folder.
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(spool, fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(spool / patient, fs::perms::owner_all);
  fs::permissions(spool / study, fs::perms::owner_all | fs::perms::others_read);
  auto cfg = dir.write("agent.toml", "[[queue]]\nname = \"incoming\"\ntype = \"directory\"\npath = \"" + spool.string() +
                                         "\"\nrecursive = true\ninterval = \"1s\"\ntimeout = \"1s\"\n");
  fs::permissions(cfg, fs::perms::owner_all | fs::perms::others_read);
  Agent a(dir, cfg, {}, {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  ASSERT_TRUE(a.ready) << a.proc->log();
  std::string metrics;
  ASSERT_TRUE(eventually([&] {
    metrics = a.get("/metrics");
    return metric_value(metrics, "pacs_probe_failures_total{probe=\"queue_directory\",target=\"incoming\",reason=\"io_error\"}")
               .value_or(0) >= 1;
  })) << metrics << a.proc->log();
  auto status = a.get("/");
  auto probe = a.get("/probe?target=incoming");
  a.proc->kill_signal(SIGTERM);
  ASSERT_TRUE(a.proc->wait_exit(30s));
  auto log = a.proc->log();
  // Control: the agent met the two locked entries (it read their names
  // from the spool listing) and says so, with counts and errno only.
  const std::string said = "2 entries could not be read (first error: Permission denied)";
  EXPECT_NE(status.find(said), std::string::npos) << status;
  EXPECT_NE(log.find(said), std::string::npos) << log;
  EXPECT_EQ(metric_value(metrics, "pacs_queue_items{probe=\"queue_directory\",target=\"incoming\"}"), 1.0) << metrics;
  EXPECT_NE(log.find("level=debug"), std::string::npos);
  for (const std::string& phi : {patient, study, file, std::string("CANARY"), std::string("DOE^"), std::string("SMITH^")}) {
    EXPECT_EQ(metrics.find(phi), std::string::npos) << phi << " in /metrics";
    EXPECT_EQ(status.find(phi), std::string::npos) << phi << " on the status page";
    EXPECT_EQ(probe.find(phi), std::string::npos) << phi << " in /probe";
    EXPECT_EQ(log.find(phi), std::string::npos) << phi << " in the debug log";
  }
}

// ---------------------------------------------------------------------------
// A dead mount.

TEST(AgentHardening, HungSpoolProbeEndsAtItsDeadlineReloadWorksSigtermIsPrompt) {
  TempDir dir;
  DeadMount dead(dir / "nfs");
  PACS_REQUIRE_DEAD_MOUNT(dead);
  auto config = [&](const std::string& extra) {
    return "[[queue]]\nname = \"hung\"\ntype = \"directory\"\npath = \"" + dead.path().string() +
           "\"\ninterval = \"1h\"\ntimeout = \"2s\"\n\n[[filesystem]]\nname = \"" + extra + "\"\npath = \"/\"\n"
           "interval = \"1s\"\ntimeout = \"1s\"\n";
  };
  auto cfg = dir.write("agent.toml", config("before"));
  Agent a(dir, cfg, {"--web.enable-lifecycle"});
  ASSERT_TRUE(a.ready) << a.proc->log();
  // More /probe requests than on-demand workers, with different deadlines
  // (so they do not share a run): each ends at its own deadline.
  std::vector<std::future<HttpResponse>> probes;
  for (int i = 0; i < 6; ++i) {
    probes.push_back(std::async(std::launch::async, [&, i] {
      return http_request(a.port, "GET", "/probe?target=hung",
                          {{"X-Prometheus-Scrape-Timeout-Seconds", std::to_string(2 + i)}}, {}, 60s);
    }));
  }
  // Meanwhile a reload goes through (it has a lane of its own).
  dir.write("agent.toml", config("after"));
  auto reload = http_request(a.port, "POST", "/-/reload", {}, {}, 30s);
  EXPECT_EQ(reload.status, 200) << reload.body;
  EXPECT_TRUE(eventually([&] {
    return metric_value(a.get("/metrics"), "pacs_probe_runs_total{probe=\"filesystem\",target=\"after\"}").value_or(0) >= 1;
  }));
  for (auto& f : probes) {
    auto r = f.get();
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(metric_value(r.body, "probe_success"), 0.0) << r.body;
    EXPECT_EQ(metric_value(r.body, "pacs_probe_result_info{probe=\"queue_directory\",target=\"hung\",reason=\"io_timeout\"}"),
              1.0)
        << r.body;
    // Its deadline is min(timeout 2 s, scrape timeout - 0.5 s) plus the watchdog's grace.
    EXPECT_LE(metric_value(r.body, "probe_duration_seconds").value_or(99), 2.0 + 1.0) << r.body;
  }
  // Still serving /probe afterwards: nothing was left pinned.
  auto again = http_request(a.port, "GET", "/probe?target=hung", {}, {}, 30s);
  EXPECT_EQ(again.status, 200);
  EXPECT_NE(again.body.find("reason=\"io_timeout\""), std::string::npos) << again.body;

  // SIGTERM while a scan is stuck (a fresh /probe is waiting on it): exit 0
  // within the longest probe deadline (2 s) plus 2 s.
  auto waiting = std::async(std::launch::async, [&] {
    return http_request(a.port, "GET", "/probe?target=hung", {{"X-Prometheus-Scrape-Timeout-Seconds", "30"}}, {}, 60s);
  });
  std::this_thread::sleep_for(300ms);
  auto t0 = std::chrono::steady_clock::now();
  a.proc->kill_signal(SIGTERM);
  // The agent's shutdown is done when it logs "stopped"; the exit itself may
  // then wait for the kernel only under LeakSanitizer, which must stop every
  // thread (one is stuck on the mount), so the mount is released after.
  bool stopped = eventually([&] { return a.proc->log().find("msg=stopped") != std::string::npos; }, 60s);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(stopped) << a.proc->log();
  EXPECT_LE(took, 2.0 + 2.0) << "SIGTERM waited on the stuck scan";
  dead.release();
  auto rc = a.proc->wait_exit(60s);
  ASSERT_TRUE(rc) << "agent did not exit";
  EXPECT_EQ(*rc, 0) << a.proc->log();
  waiting.get();
  EXPECT_NE(a.proc->log().find("msg=stopped"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Signals.

// The old readiness cue (the port accepts TCP) comes before the agent
// serves: systemd may signal the service at any such moment. A SIGHUP then
// must not kill it (its default action), a SIGTERM must be a clean stop.
TEST(AgentHardening, SignalsDuringStartUpAreHandled) {
  TempDir dir;
  auto cfg = dir.write("agent.toml", "[[filesystem]]\nname = \"root\"\npath = \"/\"\n");
  for (int i = 0; i < 10; ++i) {
    int port = free_port();
    Process p({agent_binary(), "--config.file=" + cfg.string(), "--web.listen-address=127.0.0.1:" + std::to_string(port)},
              dir / ("start-" + std::to_string(i) + ".log"));
    ASSERT_TRUE(wait_for_port(port, 30s)) << p.log();
    p.kill_signal(SIGHUP);
    ASSERT_TRUE(wait_for_http(port)) << "run " << i << ": SIGHUP during start-up killed the agent\n" << p.log();
    EXPECT_TRUE(p.running());
    p.kill_signal(SIGTERM);
    auto rc = p.wait_exit(60s);
    ASSERT_TRUE(rc) << p.log();
    EXPECT_EQ(*rc, 0) << p.log();
  }
  for (int i = 0; i < 10; ++i) {
    int port = free_port();
    Process p({agent_binary(), "--config.file=" + cfg.string(), "--web.listen-address=127.0.0.1:" + std::to_string(port)},
              dir / ("stop-" + std::to_string(i) + ".log"));
    ASSERT_TRUE(wait_for_port(port, 30s)) << p.log();
    p.kill_signal(SIGTERM);
    auto rc = p.wait_exit(60s);
    ASSERT_TRUE(rc) << p.log();
    EXPECT_EQ(*rc, 0) << "run " << i << ": SIGTERM during start-up took the default action\n" << p.log();
    EXPECT_NE(p.log().find("msg=stopped"), std::string::npos) << p.log();
  }
}

TEST(AgentHardening, ReloadEndpointIsOffByDefaultSighupAlwaysWorks) {
  TempDir dir;
  auto fs_cfg = [](const std::string& name) { return "[[filesystem]]\nname = \"" + name + "\"\npath = \"/\"\n"; };
  auto cfg = dir.write("agent.toml", fs_cfg("one"));
  Agent a(dir, cfg);
  ASSERT_TRUE(a.ready) << a.proc->log();
  dir.write("agent.toml", fs_cfg("two"));
  auto r = http_request(a.port, "POST", "/-/reload");
  EXPECT_EQ(r.status, 403) << r.body;
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(a.get("/metrics").find("target=\"two\""), std::string::npos) << "a refused reload reloaded";
  a.proc->kill_signal(SIGHUP);
  EXPECT_TRUE(eventually([&] { return a.get("/metrics").find("target=\"two\"") != std::string::npos; }));
}

// ---------------------------------------------------------------------------
// Out of file descriptors: the listener backs off instead of spinning.

TEST(AgentHardening, AcceptErrorsBackOff) {
  PACS_REQUIRE_PEER("prlimit");
  TempDir dir;
  auto cfg = dir.write("agent.toml", "[[filesystem]]\nname = \"root\"\npath = \"/\"\ninterval = \"1h\"\n");
  // UBSan's vptr check proves memory readable through a pipe; without
  // descriptors it cannot, and aborts with a bogus "invalid vptr" (checks
  // are not recoverable in our sanitizer builds). Nothing to learn there.
  if (agent_binary_contains("__ubsan_handle_dynamic_type_cache_miss")) {
    GTEST_SKIP() << "agent built with UBSan's vptr check, which needs free descriptors itself";
  }
  Agent a(dir, cfg, {}, {"prlimit", "--nofile=48:48", "--"});
  ASSERT_TRUE(a.ready) << a.proc->log();
  // From 10 addresses: below the per-client cap, so nothing is evicted and
  // the agent runs out of descriptors.
  std::vector<int> held;
  for (int i = 0; i < 80; ++i) {
    int fd = connect_from("127.0.0." + std::to_string(2 + i % 10), a.port);
    if (fd < 0) break;
    held.push_back(fd);
  }
  ASSERT_GE(held.size(), 60u);
  std::this_thread::sleep_for(3s);  // out of descriptors for a while
  for (int fd : held) ::close(fd);
  std::string m;
  ASSERT_TRUE(eventually([&] {
    m = a.get("/metrics");
    return !m.empty();
  })) << a.proc->log();
  auto errors = metric_value(m, "pacs_agent_http_accept_errors_total");
  ASSERT_TRUE(errors) << m;
  EXPECT_GE(*errors, 1) << "the agent never ran out of descriptors (control)";
  // A listener re-arming at once fails accept() hundreds of thousands of
  // times a second; backing off (up to 1 s) a few dozen times at most.
  EXPECT_LE(*errors, 100) << "the acceptor spun";
  EXPECT_NE(a.proc->log().find("cannot accept HTTP connections; backing off"), std::string::npos);
}

// ---------------------------------------------------------------------------
// [web] on reload: a rotated password takes effect without a restart.

std::string htpasswd_hash(const std::string& password) {
  char salt[64];
  crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof salt);  // low cost: tests only
  crypt_data d{};
  return crypt_r(password.c_str(), salt, &d);
}

std::string basic_header(const std::string& user, const std::string& pass) {
  static const char* b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string in = user + ":" + pass, out;
  for (size_t i = 0; i < in.size(); i += 3) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    if (i + 2 < in.size()) v |= static_cast<unsigned char>(in[i + 2]);
    out += b64[(v >> 18) & 63];
    out += b64[(v >> 12) & 63];
    out += i + 1 < in.size() ? b64[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? b64[v & 63] : '=';
  }
  return "Basic " + out;
}

TEST(AgentHardening, ReloadRotatesBasicAuthPassword) {
  TempDir dir;
  auto cfg_with = [&](const std::string& password) {
    return "[web]\n[web.basic_auth_users]\nprometheus = \"" + htpasswd_hash(password) +
           "\"\n\n[[filesystem]]\nname = \"root\"\npath = \"/\"\n";
  };
  auto cfg = dir.write("agent.toml", cfg_with("leaked"));
  Agent a(dir, cfg, {}, {}, {}, 401);
  ASSERT_TRUE(a.ready) << a.proc->log();
  ASSERT_TRUE(eventually([&] {
    return http_get(a.port, "/-/healthy", {{"Authorization", basic_header("prometheus", "leaked")}}).status == 200;
  })) << a.proc->log();
  dir.write("agent.toml", cfg_with("rotated"));
  a.proc->kill_signal(SIGHUP);
  EXPECT_TRUE(eventually([&] {
    return http_get(a.port, "/-/healthy", {{"Authorization", basic_header("prometheus", "leaked")}}).status == 401;
  })) << "the leaked password still works after a reload\n" << a.proc->log();
  EXPECT_EQ(http_get(a.port, "/-/healthy", {{"Authorization", basic_header("prometheus", "rotated")}}).status, 200);
}

// ---------------------------------------------------------------------------
// The HTTP client: no proxy from the environment, no query string in messages.

TEST(AgentHardening, ProxyVariablesAreIgnoredAndQueryStringsNeverShown) {
  LoopbackHttpServer target([](const LoopbackRequest&) { return LoopbackReply::json("{}", 500); });
  LoopbackHttpServer proxy([](const LoopbackRequest&) { return LoopbackReply::json("{}", 502); });
  TempDir dir;
  const std::string secret = "tok3nSECRET";
  auto cfg = dir.write("agent.toml", "[[queue]]\nname = \"jobs\"\ntype = \"http_json\"\nurl = \"" +
                                         target.url("/queue?access_token=" + secret) +
                                         "\"\ninterval = \"1s\"\ntimeout = \"1s\"\n"
                                         "values = [{ name = \"depth\", pointer = \"/depth\" }]\n");
  std::map<std::string, std::string> env;
  for (const char* v : {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) {
    env[v] = proxy.url();
  }
  env["no_proxy"] = env["NO_PROXY"] = "";
  Agent a(dir, cfg, {}, {}, env);
  ASSERT_TRUE(a.ready) << a.proc->log();
  ASSERT_TRUE(eventually([&] { return !target.requests().empty(); })) << a.proc->log();
  auto probe = a.get("/probe?target=jobs");
  auto status = a.get("/");
  // Control: the token did go out, to the target itself.
  EXPECT_NE(target.requests().at(0).target.find(secret), std::string::npos);
  EXPECT_TRUE(proxy.requests().empty()) << "a request went through the proxy from the environment";
  EXPECT_NE(status.find("HTTP 500"), std::string::npos) << status;
  a.proc->kill_signal(SIGTERM);
  ASSERT_TRUE(a.proc->wait_exit(30s));
  for (const auto& [where, text] : {std::pair<std::string, std::string>{"status page", status}, {"/probe", probe},
                                    {"log", a.proc->log()}}) {
    EXPECT_EQ(text.find(secret), std::string::npos) << "the URL's query string in the " << where;
  }
}

}  // namespace
}  // namespace pacs::test
