// Docs that cannot rot: the agent binary runs with every probe kind's golden
// fixture (real peers on 127.0.0.1, see tests/support/golden.h); every metric
// it exports on /metrics and /probe must be documented in docs/metrics.md,
// and every metric documented there must be exported.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/golden.h"
#include "tests/support/support.h"

namespace pacs::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Metric names in the first cell of every markdown table whose header's
// first cell is "metric".
std::set<std::string> documented_metrics(const fs::path& doc) {
  std::ifstream in(doc);
  std::set<std::string> out;
  std::string line;
  bool in_metric_table = false, in_table = false;
  std::regex name("`([a-zA-Z_:][a-zA-Z0-9_:]*)`");
  while (std::getline(in, line)) {
    if (line.rfind("|", 0) != 0) {
      in_table = in_metric_table = false;
      continue;
    }
    auto first = line.substr(1, line.find('|', 1) - 1);
    if (!in_table) {  // header row
      in_table = true;
      in_metric_table = first.find("metric") != std::string::npos;
      continue;
    }
    if (!in_metric_table) continue;
    for (std::sregex_iterator it(first.begin(), first.end(), name), end; it != end; ++it) out.insert((*it)[1]);
  }
  return out;
}

// Family names from "# TYPE <name> <type>" lines.
std::set<std::string> exported_families(const std::string& exposition) {
  std::set<std::string> out;
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    auto rest = line.substr(7);
    out.insert(rest.substr(0, rest.find(' ')));
  }
  return out;
}

// "probe,target" of every pacs_probe_runs_total series, with its value.
std::map<std::string, double> runs(const std::string& exposition) {
  std::map<std::string, double> out;
  std::istringstream in(exposition);
  std::string line;
  std::regex re(R"re(^pacs_probe_runs_total\{probe="([^"]+)",target="([^"]+)"\} ([0-9.e+]+))re");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, re)) out[m[1].str() + "," + m[2].str()] = std::stod(m[3]);
  }
  return out;
}

TEST(MetricsDocs, EveryExportedMetricIsDocumentedAndEveryDocumentedOneExported) {
  // Every kind folder has a fixture linked into this binary.
  std::set<std::string> folders, fixtures;
  for (const auto& e : fs::directory_iterator(fs::path(PACS_SOURCE_DIR) / "probes"))
    if (e.is_directory() && e.path().filename() != "lib") folders.insert(e.path().filename());
  for (const auto& [kind, factory] : golden_fixtures()) fixtures.insert(kind);
  ASSERT_EQ(fixtures, folders) << "every probe kind needs probes/<kind>/tests/golden_fixture.cpp";

  TempDir dir;
  std::vector<std::unique_ptr<GoldenFixture>> running;
  std::vector<std::string> probe_queries;
  std::string config = "[agent]\ninterval = \"2s\"\ntimeout = \"2s\"\n";
  for (const auto& [kind, factory] : golden_fixtures()) {
    auto f = factory();
    std::string targets;
    try {
      targets = f->start(dir);
    } catch (const std::exception& e) {
      FAIL() << kind << " fixture did not start: " << e.what();
    }
    ASSERT_FALSE(targets.empty()) << kind;
    config += "\n" + targets;
    for (const auto& q : f->probe_requests()) probe_queries.push_back(q);
    running.push_back(std::move(f));
  }
  auto cfg = dir.write("golden.toml", config);
  int port = free_port();
  Process agent({agent_binary(), "--config.file=" + cfg.string(), "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                dir / "agent.log");
  ASSERT_TRUE(wait_for_port(port, 15s)) << agent.log();

  // Until every probe has finished at least two runs (gauges of the latest).
  std::string metrics;
  auto end = std::chrono::steady_clock::now() + 90s;
  bool all_ran = false;
  while (std::chrono::steady_clock::now() < end && !all_ran) {
    metrics = http_get(port, "/metrics").body;
    auto r = runs(metrics);
    all_ran = !r.empty() && std::all_of(r.begin(), r.end(), [](const auto& kv) { return kv.second >= 2; });
    if (!all_ran) std::this_thread::sleep_for(250ms);
  }
  ASSERT_TRUE(all_ran) << metrics << agent.log();

  std::set<std::string> exported = exported_families(metrics);
  // /probe for every target, and whatever the fixtures ask for.
  std::regex target_re(R"re(target="([^"]+)")re");
  std::set<std::string> targets;
  for (std::sregex_iterator it(metrics.begin(), metrics.end(), target_re), e; it != e; ++it) targets.insert((*it)[1]);
  for (const auto& t : targets) probe_queries.push_back("target=" + t);
  for (const auto& q : probe_queries) {
    auto r = http_get(port, "/probe?" + q);
    ASSERT_EQ(r.status, 200) << q << ": " << r.body;
    for (const auto& n : exported_families(r.body)) exported.insert(n);
  }

  std::set<std::string> documented = documented_metrics(fs::path(PACS_SOURCE_DIR) / "docs" / "metrics.md");
  ASSERT_GT(documented.size(), 20u) << "docs/metrics.md: metric tables not found (header cell \"metric\")";
  for (const auto& n : exported) {
    EXPECT_TRUE(documented.count(n)) << n << " is exported but not documented in docs/metrics.md "
                                          "(a kind's metrics belong in its README's \"## Metrics\"; run scripts/gen-docs)";
  }
  for (const auto& n : documented) {
    EXPECT_TRUE(exported.count(n)) << n << " is documented in docs/metrics.md but the agent never exported it "
                                          "with every golden fixture running (stale doc, or a fixture that misses a case)";
  }
  EXPECT_EQ(agent.stop(), 0) << agent.log();
}

}  // namespace
}  // namespace pacs::test
