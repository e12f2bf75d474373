// The built binary at the edges the fleet work touches: /metrics served from
// the cached rendering (plain and gzip, read by curl and GNU gzip, checked by
// promtool), the scheduling-lag histogram, and [agent] include across
// reloads (a broken included file is refused like any bad config).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/support.h"

namespace pacs::test {
namespace {
using namespace std::chrono_literals;

struct Agent {
  Agent(TempDir& dir, const std::string& config) : port(free_port()) {
    proc = std::make_unique<Process>(std::vector<std::string>{agent_binary(),
                                                              "--web.listen-address=127.0.0.1:" + std::to_string(port),
                                                              "--log.level=debug", "--web.enable-lifecycle", "--config.file=" + config},
                                     dir / ("agent-" + std::to_string(port) + ".log"));
    ready = wait_for_port(port, 10s);
  }
  std::string metrics() { return http_get(port, "/metrics").body; }
  bool wait_metrics(const std::function<bool(const std::string&)>& pred, std::chrono::seconds limit = 20s) {
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

std::string fs_target(const std::string& name, const TempDir& dir) {
  return "[[filesystem]]\nname = \"" + name + "\"\npath = \"" + dir.path().string() + "\"\n";
}

std::optional<double> runs(const std::string& m, const std::string& target) {
  return metric_value(m, "pacs_probe_runs_total{probe=\"filesystem\",target=\"" + target + "\"}");
}

// The series lines (no comments) of families that only change when a probe
// finishes: the part /metrics serves from the store's cache.
std::string probe_lines(const std::string& text) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    if (line.rfind("pacs_probe_", 0) == 0 || line.rfind("pacs_filesystem_", 0) == 0) out += line + "\n";
  }
  return out;
}

TEST(ScaleBinary, GzipAndPlainMetricsAgreeAndPassPromtool) {
  PACS_REQUIRE_PEER("promtool");
  PACS_REQUIRE_PEER("curl");
  TempDir dir;
  // Probes that run once an hour: the probe families cannot change between the two requests.
  auto cfg = dir.write("agent.toml", "[agent]\ninterval = \"1h\"\ntimeout = \"5s\"\n\n" + fs_target("a", dir) + "\n" +
                                          fs_target("b", dir));
  Agent a(dir, cfg.string());
  ASSERT_TRUE(a.ready) << a.proc->log();
  ASSERT_TRUE(a.wait_metrics([](const std::string& m) { return runs(m, "a") == 1.0 && runs(m, "b") == 1.0; }))
      << a.metrics();
  std::string url = "http://127.0.0.1:" + std::to_string(a.port) + "/metrics";
  std::string plain, gz, headers;
  ASSERT_EQ(run_command({"curl", "-sS", "-o", (dir / "plain.txt").string(), url}), 0);
  ASSERT_EQ(run_command({"curl", "-sS", "--compressed", "-D", (dir / "h.txt").string(), "-o",
                         (dir / "gz.txt").string(), url}),
            0);
  ASSERT_EQ(run_command({"curl", "-sS", "-H", "Accept-Encoding: gzip", "-o", (dir / "raw.gz").string(), url}), 0);
  auto read = [&](const std::string& name) {
    std::ifstream f(dir / name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  plain = read("plain.txt");
  gz = read("gz.txt");
  headers = read("h.txt");
  EXPECT_NE(headers.find("Content-Encoding: gzip"), std::string::npos) << headers;
  EXPECT_NE(headers.find("Vary: Accept-Encoding"), std::string::npos) << headers;
  EXPECT_EQ(probe_lines(gz), probe_lines(plain));
  EXPECT_NE(probe_lines(plain).find("pacs_probe_success{probe=\"filesystem\",target=\"b\"} 1"), std::string::npos)
      << plain;
  // GNU gzip has its own inflater: the member must be valid for it too.
  std::string out;
  EXPECT_EQ(run_command({"gzip", "-t", (dir / "raw.gz").string()}, &out), 0) << out;
  for (const char* name : {"plain.txt", "gz.txt"}) {
    int rc = run_command({"sh", "-c", "promtool check metrics < " + (dir / name).string()}, &out);
    EXPECT_EQ(rc, 0) << name << ": " << out;
    EXPECT_EQ(out, "") << name << ": promtool complained:\n" << out;
  }
  // The lag of every scheduled run is observed.
  EXPECT_EQ(metric_value(plain, "pacs_agent_scheduling_lag_seconds_count"), 2.0) << plain;
  EXPECT_EQ(metric_value(plain, "pacs_agent_scheduling_lag_seconds_bucket{le=\"+Inf\"}"), 2.0);
  EXPECT_TRUE(metric_value(plain, "pacs_agent_scheduling_lag_seconds_bucket{le=\"1\"}").has_value()) << plain;
  // HEAD: headers only.
  EXPECT_EQ(run_command({"curl", "-sS", "-I", "--compressed", "-o", (dir / "head.txt").string(), url}), 0);
  EXPECT_NE(read("head.txt").find("Content-Encoding: gzip"), std::string::npos);
}

TEST(ScaleBinary, IncludedFilesReloadAndABrokenOneIsRefused) {
  TempDir dir;
  auto main = dir.write("etc/pacs-agent.toml", "[agent]\ninterval = \"1s\"\ntimeout = \"1s\"\n"
                                               "include = [\"conf.d/*.toml\"]\n\n" + fs_target("main", dir));
  dir.write("etc/conf.d/a.toml", fs_target("a", dir));
  Agent ag(dir, main.string());
  ASSERT_TRUE(ag.ready) << ag.proc->log();
  ASSERT_TRUE(ag.wait_metrics([](const std::string& m) { return runs(m, "main") >= 1 && runs(m, "a") >= 1; }))
      << ag.proc->log();

  // A new file in conf.d, then SIGHUP: its target appears; "a" keeps its counters.
  double a_runs = runs(ag.metrics(), "a").value_or(0);
  dir.write("etc/conf.d/b.toml", fs_target("b", dir));
  ag.proc->kill_signal(SIGHUP);
  ASSERT_TRUE(ag.wait_metrics([](const std::string& m) { return runs(m, "b") >= 1; })) << ag.proc->log();
  EXPECT_GE(runs(ag.metrics(), "a").value_or(0), a_runs) << "adding an included file reset another target";

  // A broken included file: refused, the old targets keep running.
  auto bad = dir.write("etc/conf.d/c.toml", fs_target("c", dir) + "colour = \"red\"\n");
  ag.proc->kill_signal(SIGHUP);
  ASSERT_TRUE(ag.wait_metrics([](const std::string& m) {
    return metric_value(m, "pacs_agent_config_last_reload_successful") == 0.0;
  })) << ag.proc->log();
  std::string m = ag.metrics();
  EXPECT_EQ(m.find("target=\"c\""), std::string::npos) << "a target of the refused config is running";
  double before_a = runs(m, "a").value_or(0), before_b = runs(m, "b").value_or(0);
  EXPECT_TRUE(ag.wait_metrics([&](const std::string& mm) {
    return runs(mm, "a") >= before_a + 2 && runs(mm, "b") >= before_b + 2 && runs(mm, "main") >= 1;
  })) << "the old targets stopped after a refused reload";
  EXPECT_NE(ag.proc->log().find(bad.string() + ":4: filesystem[0].colour: unknown key"), std::string::npos)
      << ag.proc->log();
  auto r = http_request(ag.port, "POST", "/-/reload");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find(bad.string() + ":4: filesystem[0].colour: unknown key"), std::string::npos) << r.body;

  // Fixed: accepted, "c" runs.
  dir.write("etc/conf.d/c.toml", fs_target("c", dir));
  ag.proc->kill_signal(SIGHUP);
  EXPECT_TRUE(ag.wait_metrics([](const std::string& mm) {
    return metric_value(mm, "pacs_agent_config_last_reload_successful") == 1.0 && runs(mm, "c") >= 1;
  })) << ag.proc->log();
}

}  // namespace
}  // namespace pacs::test
