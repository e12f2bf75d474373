// The built pacs-agent binary, as an admin runs it: flags, /metrics checked
// by the real promtool, reloads (good and bad, by SIGHUP and by POST), and a
// clean SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <iterator>
#include <regex>
#include <thread>

#include "tests/support/loopback_clients.h"
#include "tests/support/support.h"

namespace pacs::test {
namespace {
using namespace std::chrono_literals;


// A metric line's value, or nullopt when the series is absent.

struct RunningAgent {
  RunningAgent(TempDir& dir, const std::string& config, const std::vector<std::string>& extra = {})
      : port(free_port()) {
    std::vector<std::string> argv = {agent_binary(), "--web.listen-address=127.0.0.1:" + std::to_string(port),
                                     "--log.level=debug", "--web.enable-lifecycle"};
    if (!config.empty()) argv.push_back("--config.file=" + config);
    for (const auto& e : extra) argv.push_back(e);
    proc = std::make_unique<Process>(argv, dir / ("agent-" + std::to_string(port) + ".log"));
    ready = wait_for_http(port);  // a real answer: the port accepts before the agent serves
  }
  std::string metrics() { return http_get(port, "/metrics").body; }
  // Polls /metrics until `pred` holds (probes run in the background).
  bool wait_metrics(const std::function<bool(const std::string&)>& pred, std::chrono::seconds limit = 15s) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (pred(metrics())) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }
  int port;
  std::unique_ptr<Process> proc;
  bool ready = false;
};

std::string fs_config(const TempDir& dir, const std::vector<std::string>& names, const std::string& interval = "1s") {
  std::string c = "[agent]\ninterval = \"" + interval + "\"\ntimeout = \"1s\"\n";
  for (const auto& n : names) c += "\n[[filesystem]]\nname = \"" + n + "\"\npath = \"" + dir.path().string() + "\"\n";
  return c;
}

TEST(AgentBinary, VersionHelpAndBadFlags) {
  std::string out;
  EXPECT_EQ(run_command({agent_binary(), "--version"}, &out), 0);
  EXPECT_NE(out.find("pacs-agent, version "), std::string::npos);
  EXPECT_EQ(run_command({agent_binary(), "--help"}, &out), 0);
  EXPECT_NE(out.find("--config.file"), std::string::npos);
  EXPECT_EQ(run_command({agent_binary(), "--no-such-flag"}, &out), 2);
  EXPECT_NE(out.find("unknown flag --no-such-flag"), std::string::npos);
  EXPECT_EQ(run_command({agent_binary(), "--log.level=loud", "--version"}, &out), 0);  // --version wins
}

TEST(AgentBinary, MissingDicomDictionaryIsAClearError) {
  std::string out;
  TempDir dir;
  Process p({agent_binary(), "--config.check"}, dir / "out.log", {{"DCMDICTPATH", "/nonexistent/dicom.dic"}});
  auto rc = p.wait_exit(10s);
  ASSERT_TRUE(rc);
  EXPECT_EQ(*rc, 1);
  EXPECT_NE(p.log().find("msg=\"cannot initialise probe libraries\" err=\"DICOM data dictionary not loaded"),
            std::string::npos)
      << p.log();
}

TEST(AgentBinary, ConfigCheck) {
  TempDir dir;
  auto good = dir.write("good.toml", fs_config(dir, {"a", "b"}));
  auto bad = dir.write("bad.toml", "[agent]\ninterval = \"15s\"\n\n[[filesystem]]\nname = \"x\"\npath = \"/\"\nport = 1\n");
  std::string out;
  EXPECT_EQ(run_command({agent_binary(), "--config.check", "--config.file=" + good.string()}, &out), 0);
  EXPECT_NE(out.find(": OK: 2 targets, 2 probes"), std::string::npos) << out;
  EXPECT_EQ(run_command({agent_binary(), "--config.check", "--config.file=" + bad.string()}, &out), 1);
  EXPECT_NE(out.find(bad.string() + ":7: filesystem[0].port: unknown key"), std::string::npos) << out;
  EXPECT_EQ(run_command({agent_binary(), "--config.check"}, &out), 0);  // embedded default
}

TEST(AgentBinary, MetricsPassPromtoolCheck) {
  PACS_REQUIRE_PEER("promtool");
  TempDir dir;
  auto cfg = dir.write("agent.toml", fs_config(dir, {"store"}));
  RunningAgent a(dir, cfg.string());
  ASSERT_TRUE(a.ready) << a.proc->log();
  ASSERT_TRUE(a.wait_metrics([](const std::string& m) {
    return metric_value(m, "pacs_probe_success{probe=\"filesystem\",target=\"store\"}").has_value();
  })) << a.proc->log();
  // Exercise the request counters too, so every family is present.
  http_get(a.port, "/nope");
  auto text = a.metrics();
  auto file = dir.write("metrics.txt", text);
  std::string out;
  int rc = run_command({"sh", "-c", "promtool check metrics < " + file.string()}, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "") << "promtool complained:\n" << out;
  EXPECT_EQ(metric_value(text, "pacs_probe_success{probe=\"filesystem\",target=\"store\"}"), 1.0);
  EXPECT_EQ(metric_value(text, "pacs_agent_config_last_reload_successful"), 1.0);
}

TEST(AgentBinary, EmbeddedDefaultWatchesRootFilesystem) {
  TempDir dir;
  RunningAgent a(dir, "");
  ASSERT_TRUE(a.ready) << a.proc->log();
  EXPECT_TRUE(a.wait_metrics([](const std::string& m) {
    return m.find("pacs_filesystem_size_bytes{probe=\"filesystem\",target=\"root\",path=\"/\"}") != std::string::npos;
  }, 20s)) << a.metrics();
  EXPECT_NE(a.proc->log().find("running on the embedded default config"), std::string::npos);
}

TEST(AgentBinary, BadReloadKeepsOldProbesGoodReloadSwapsTargets) {
  TempDir dir;
  auto cfg = dir.write("agent.toml", fs_config(dir, {"keep", "drop"}));
  RunningAgent a(dir, cfg.string());
  ASSERT_TRUE(a.ready) << a.proc->log();
  auto runs = [&](const std::string& m, const std::string& t) {
    return metric_value(m, "pacs_probe_runs_total{probe=\"filesystem\",target=\"" + t + "\"}");
  };
  ASSERT_TRUE(a.wait_metrics([&](const std::string& m) { return runs(m, "keep").value_or(0) >= 1 && runs(m, "drop").value_or(0) >= 1; }))
      << a.metrics();

  // 1. Invalid TOML, then SIGHUP: old config keeps running, gauge drops to 0.
  dir.write("agent.toml", "[[filesystem]\nname = ");
  a.proc->kill_signal(SIGHUP);
  ASSERT_TRUE(a.wait_metrics([](const std::string& m) {
    return metric_value(m, "pacs_agent_config_last_reload_successful") == 0.0;
  })) << a.proc->log();
  double before = runs(a.metrics(), "drop").value_or(0);
  ASSERT_TRUE(a.wait_metrics([&](const std::string& m) { return runs(m, "drop").value_or(0) >= before + 2; }))
      << "old probes stopped after a bad reload";

  // 2. Same through POST /-/reload: 500 with the reason.
  auto r = http_request(a.port, "POST", "/-/reload");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("failed to reload config: " + cfg.string() + ":1: syntax error"), std::string::npos) << r.body;
  EXPECT_NE(a.proc->log().find("config reload failed; keeping the running config"), std::string::npos);

  // 3. A good config: "drop" vanishes, "new" appears, "keep" keeps its counters.
  double keep_runs = runs(a.metrics(), "keep").value_or(0);
  dir.write("agent.toml", fs_config(dir, {"keep", "new"}));
  r = http_request(a.port, "POST", "/-/reload");
  EXPECT_EQ(r.status, 200) << r.body;
  auto m = a.metrics();
  EXPECT_EQ(metric_value(m, "pacs_agent_config_last_reload_successful"), 1.0);
  EXPECT_EQ(m.find("target=\"drop\""), std::string::npos) << "removed target still exported";
  EXPECT_GE(runs(m, "keep").value_or(0), keep_runs) << "counters of an unchanged target were reset";
  EXPECT_TRUE(a.wait_metrics([&](const std::string& mm) { return runs(mm, "new").value_or(0) >= 1; }));

  // 4. Another good one by SIGHUP.
  dir.write("agent.toml", fs_config(dir, {"only"}));
  a.proc->kill_signal(SIGHUP);
  EXPECT_TRUE(a.wait_metrics([&](const std::string& mm) {
    return runs(mm, "only").value_or(0) >= 1 && mm.find("target=\"keep\"") == std::string::npos;
  })) << a.metrics();
}

TEST(AgentBinary, ProbeEndpointRunsConfiguredTargetsOnly) {
  TempDir dir;
  auto cfg = dir.write("agent.toml", fs_config(dir, {"vol"}, "1h"));
  RunningAgent a(dir, cfg.string());
  ASSERT_TRUE(a.ready);
  auto r = http_get(a.port, "/probe?target=vol", {{"X-Prometheus-Scrape-Timeout-Seconds", "3"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(metric_value(r.body, "probe_success"), 1.0) << r.body;
  EXPECT_EQ(metric_value(r.body, "probe_timeout_seconds"), 1.0);  // capped by the target's 1s timeout
  EXPECT_TRUE(metric_value(r.body, "pacs_filesystem_size_bytes{probe=\"filesystem\",target=\"vol\",path=\"" +
                                   dir.path().string() + "\"}"));
  EXPECT_EQ(http_get(a.port, "/probe?target=vol&check=echo").status, 400);
  EXPECT_EQ(http_get(a.port, "/probe?target=127.0.0.1:104").status, 400);
  // A failing probe is still HTTP 200, with probe_success 0.
  std::filesystem::remove_all(dir / "gone");
  dir.write("agent.toml", fs_config(dir, {"vol"}, "1h") + "\n[[filesystem]]\nname = \"gone\"\npath = \"" +
                              (dir / "gone").string() + "\"\n");
  ASSERT_EQ(http_request(a.port, "POST", "/-/reload").status, 200);
  r = http_get(a.port, "/probe?target=gone");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(metric_value(r.body, "probe_success"), 0.0);
  EXPECT_EQ(metric_value(r.body, "pacs_probe_result_info{probe=\"filesystem\",target=\"gone\",reason=\"io_error\"}"), 1.0)
      << r.body;
}

TEST(AgentBinary, SigtermExitsCleanly) {
  TempDir dir;
  auto cfg = dir.write("agent.toml", fs_config(dir, {"x"}));
  RunningAgent a(dir, cfg.string());
  ASSERT_TRUE(a.ready);
  a.proc->kill_signal(SIGTERM);
  auto rc = a.proc->wait_exit(10s);
  ASSERT_TRUE(rc.has_value()) << "agent did not exit on SIGTERM";
  EXPECT_EQ(*rc, 0);
  EXPECT_NE(a.proc->log().find("level=info msg=stopped"), std::string::npos);
}

// A reload that is still running when SIGTERM arrives must neither crash the
// agent nor keep it alive: the reload lane finishes (or answers) and is
// joined. 50 times in a row (the sanitizer legs of scripts/test run this too).
TEST(AgentBinary, SighupThenSigtermFiftyTimesExitsCleanly) {
  TempDir dir;
  auto cfg = dir.write("agent.toml", fs_config(dir, {"a", "b", "c"}));
  // "stopped threads=N" counts the process's threads at exit: main alone when every
  // thread was joined; ThreadSanitizer's runtime keeps one more of its own.
  const bool tsan = [] {
    std::ifstream bin(agent_binary(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(bin)), std::istreambuf_iterator<char>());
    return bytes.find("__tsan_init") != std::string::npos;
  }();
  const std::string all_joined = tsan ? "msg=stopped threads=2" : "msg=stopped threads=1";
  for (int i = 0; i < 50; ++i) {
    SCOPED_TRACE("round " + std::to_string(i));
    int port = free_port();
    Process agent({agent_binary(), "--config.file=" + cfg.string(), "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                  dir / ("hup-term-" + std::to_string(i) + ".log"));
    // Ready means an HTTP answer, not just a listening socket.
    auto until = std::chrono::steady_clock::now() + 20s;
    while (http_request(port, "GET", "/-/ready", {}, {}, 1s).status != 200 && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_EQ(http_request(port, "GET", "/-/ready", {}, {}, 2s).status, 200) << agent.log();
    agent.kill_signal(SIGHUP);
    agent.kill_signal(SIGTERM);
    auto rc = agent.wait_exit(20s);
    ASSERT_TRUE(rc.has_value()) << "agent did not exit after SIGHUP+SIGTERM\n" << agent.log();
    ASSERT_EQ(*rc, 0) << agent.log();
    ASSERT_NE(agent.log().find(all_joined), std::string::npos) << "a thread was left\n" << agent.log();
  }
}

TEST(AgentBinary, PortInUseIsAClearError) {
  TempDir dir;
  RunningAgent a(dir, "");
  ASSERT_TRUE(a.ready);
  Process second({agent_binary(), "--web.listen-address=127.0.0.1:" + std::to_string(a.port)}, dir / "second.log");
  auto rc = second.wait_exit(10s);
  ASSERT_TRUE(rc);
  EXPECT_EQ(*rc, 1);
  EXPECT_NE(second.log().find("cannot listen on 127.0.0.1:" + std::to_string(a.port) + ": Address already in use"),
            std::string::npos);
}

}  // namespace
}  // namespace pacs::test
