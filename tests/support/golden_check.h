// Runs one kind's golden fixture (golden.h) against the built agent, for the
// kind's own tests: which metrics its README documents but the agent never
// exported (on /metrics or on the fixture's /probe requests).
#pragma once

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/golden.h"
#include "tests/support/support.h"

namespace pacs::test {

// The backticked names in the first column of README.md's "## Metrics" table.
inline std::set<std::string> documented_metrics(const std::string& kind) {
  const char* src = std::getenv("PACS_SOURCE_DIR");
  std::ifstream in(std::string(src ? src : "") + "/probes/" + kind + "/README.md");
  std::set<std::string> out;
  bool in_section = false;
  static const std::regex row(R"(^\| `([a-z][a-z0-9_:]*)` \|)");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("## ", 0) == 0) in_section = line == "## Metrics";
    std::smatch m;
    if (in_section && std::regex_search(line, m, row)) out.insert(m[1]);
  }
  return out;
}

// Empty when every documented metric was exported; else the missing names.
// `log` receives what helps to tell why (exposition, agent log).
inline std::vector<std::string> golden_missing_metrics(const std::string& kind, std::string& log,
                                                       std::chrono::seconds patience = std::chrono::seconds(40)) {
  std::unique_ptr<GoldenFixture> fixture;
  for (const auto& [k, factory] : golden_fixtures())
    if (k == kind) fixture = factory();
  if (!fixture) return {"(no golden fixture registered for " + kind + ")"};
  TempDir dir;
  const std::string toml = fixture->start(dir);
  if (toml.empty()) return {"(the fixture's peers did not start)"};
  auto cfg = dir.write("golden.toml", toml);
  int port = free_port();
  Process agent({agent_binary(), "--config.file=" + cfg.string(), "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                dir / "agent.log");
  if (!wait_for_port(port)) return {"(agent did not start: " + agent.log() + ")"};
  const auto wanted = documented_metrics(kind);
  std::vector<std::string> missing;
  std::string seen;
  for (auto end = std::chrono::steady_clock::now() + patience; std::chrono::steady_clock::now() < end;
       std::this_thread::sleep_for(std::chrono::milliseconds(500))) {
    seen = http_get(port, "/metrics").body;
    for (const auto& q : fixture->probe_requests()) seen += http_get(port, "/probe?" + q).body;
    missing.clear();
    for (const auto& m : wanted)
      if (seen.find("\n" + m + "{") == std::string::npos) missing.push_back(m);
    if (missing.empty()) break;
  }
  log = seen + "\n--- agent log ---\n" + agent.log();
  if (wanted.empty()) missing.push_back("(README documents no metric)");
  return missing;
}

}  // namespace pacs::test
