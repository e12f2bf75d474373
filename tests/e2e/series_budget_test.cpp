// The series budget: how many series one target costs, per check (probe
// label), measured on the built binary with one target per check in each
// state that exports the most (success against real peers, and failures:
// refused, rejected, missing path). Fails when a change raises a count past
// tests/e2e/series_budget.txt, and when docs/scaling.md ("Series budget")
// disagrees with that file, so the published table cannot rot.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/http_test_server.h"
#include "tests/support/support.h"

namespace pacs::test {
namespace {
using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string source_dir() {
  const char* d = std::getenv("PACS_SOURCE_DIR");
  return d ? d : PACS_SOURCE_DIR;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// "name value" lines of the budget file; '#' starts a comment.
std::map<std::string, int> read_budget() {
  std::map<std::string, int> out;
  std::istringstream in(read_file(fs::path(source_dir()) / "tests/e2e/series_budget.txt"));
  std::string line;
  while (std::getline(in, line)) {
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream ls(line);
    std::string name;
    int n;
    if (ls >> name >> n) out[name] = n;
  }
  return out;
}

std::string label(const std::string& line, const std::string& name) {
  auto pos = line.find(name + "=\"");
  if (pos == std::string::npos || (pos > 0 && line[pos - 1] != '{' && line[pos - 1] != ',')) return {};
  pos += name.size() + 2;
  return line.substr(pos, line.find('"', pos) - pos);
}

// Series per (probe, target), and the series without a probe label (the agent's own).
struct Counts {
  std::map<std::pair<std::string, std::string>, int> per_target;
  int agent = 0;
};
Counts count(const std::string& text) {
  Counts c;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::string probe = label(line, "probe"), target = label(line, "target");
    if (probe.empty()) ++c.agent;
    else ++c.per_target[{probe, target}];
  }
  return c;
}

// The empty worklist database wlmscpfs serves (AE title WLSCP).
fs::path worklist_db(const TempDir& dir) {
  dir.write("wldb/WLSCP/lockfile", "");
  return dir / "wldb";
}

TEST(SeriesBudget, EveryCheckStaysWithinItsBudgetAndTheDocsAgree) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("wlmscpfs");
  TempDir dir;
  Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  int wl_port = free_port();
  Process wl({"wlmscpfs", "-dfp", worklist_db(dir).string(), std::to_string(wl_port)}, dir / "wlmscpfs.log");
  ASSERT_TRUE(wait_for_port(wl_port, 15s)) << wl.log();
  LoopbackHttpServer dcm4chee([](const LoopbackRequest& req) {
    if (req.target.find("/queue/StgCmtSCU/count?status=") == std::string::npos) return LoopbackReply::json("{}", 404);
    return LoopbackReply::json("{\"count\":3}");
  });
  LoopbackHttpServer router([](const LoopbackRequest&) { return LoopbackReply::json("{\"incoming\":{\"depth\":4}}"); });
  int closed = free_port();  // nothing listens: connection_refused
  dir.write("spool/a.dcm", "x");
  dir.write("spool/b.dcm", "yy");

  auto dicom = [](const std::string& name, int port, const std::string& aet, const std::string& checks,
                  const std::string& extra = "") {
    return "[[dicom]]\nname = \"" + name + "\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(port) +
           "\ncalled_ae_title = \"" + aet + "\"\nchecks = " + checks + "\n" + extra + "\n";
  };
  const std::string find = "  [dicom.find]\n  keys = { StudyDate = \"today\" }\n";
  const std::string worklist = "  [dicom.worklist]\n  keys = { Modality = \"CT\" }\n";
  std::string cfg = "[agent]\ninterval = \"1s\"\ntimeout = \"1s\"\ncalling_ae_title = \"PACS_AGENT\"\n\n";
  cfg += dicom("ok", orthanc.dicom_port(), orthanc.aet(), "[\"echo\", \"find\"]", find);
  cfg += dicom("rejected", orthanc.dicom_port(), "NOT_KNOWN", "[\"echo\", \"find\"]", find);
  cfg += dicom("refused", closed, "X", "[\"echo\", \"find\", \"worklist\"]", find + worklist);
  cfg += dicom("wl", wl_port, "WLSCP", "[\"worklist\"]", worklist);
  cfg += "[[filesystem]]\nname = \"vol\"\npath = \"" + dir.path().string() + "\"\n\n";
  cfg += "[[filesystem]]\nname = \"vol-missing\"\npath = \"" + (dir / "missing").string() + "\"\n\n";
  cfg += "[[queue]]\nname = \"spool\"\ntype = \"directory\"\npath = \"" + (dir / "spool").string() + "\"\n\n";
  cfg += "[[queue]]\nname = \"spool-missing\"\ntype = \"directory\"\npath = \"" + (dir / "missing").string() +
         "\"\n\n";
  cfg += "[[queue]]\nname = \"jobs\"\ntype = \"orthanc\"\nurl = \"" + orthanc.url() + "\"\n\n";
  cfg += "[[queue]]\nname = \"jobs-refused\"\ntype = \"orthanc\"\nurl = \"http://127.0.0.1:" + std::to_string(closed) +
         "\"\n\n";
  cfg += "[[queue]]\nname = \"tasks\"\ntype = \"dcm4chee\"\nurl = \"http://127.0.0.1:" +
         std::to_string(dcm4chee.port()) + "\"\nqueues = [\"StgCmtSCU\"]\n\n";
  cfg += "[[queue]]\nname = \"router\"\ntype = \"http_json\"\nurl = \"http://127.0.0.1:" +
         std::to_string(router.port()) + "\"\n  [[queue.values]]\n  name = \"incoming\"\n  pointer = \"/incoming/depth\"\n";
  auto file = dir.write("agent.toml", cfg);

  int port = free_port();
  Process agent({agent_binary(), "--config.file=" + file.string(), "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                dir / "agent.log");
  ASSERT_TRUE(wait_for_port(port, 10s)) << agent.log();

  // Every probe has finished two runs (the second one sees a settled peer).
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"dicom_echo", "ok"},         {"dicom_find", "ok"},           {"dicom_echo", "rejected"},
      {"dicom_find", "rejected"},   {"dicom_echo", "refused"},      {"dicom_find", "refused"},
      {"dicom_worklist", "refused"}, {"dicom_worklist", "wl"},      {"filesystem", "vol"},
      {"filesystem", "vol-missing"}, {"queue_directory", "spool"},  {"queue_directory", "spool-missing"},
      {"queue_orthanc", "jobs"},     {"queue_orthanc", "jobs-refused"}, {"queue_dcm4chee", "tasks"},
      {"queue_http_json", "router"}};
  std::string text;
  auto settled = [&] {
    text = http_get(port, "/metrics").body;
    for (const auto& [p, t] : expected) {
      if (metric_value(text, "pacs_probe_runs_total{probe=\"" + p + "\",target=\"" + t + "\"}").value_or(0) < 2) {
        return false;
      }
    }
    return true;
  };
  auto end = std::chrono::steady_clock::now() + 90s;
  while (!settled() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(200ms);
  ASSERT_TRUE(settled()) << text << agent.log();
  // The states this test relies on really happened.
  auto success = [&](const std::string& p, const std::string& t) {
    return metric_value(text, "pacs_probe_success{probe=\"" + p + "\",target=\"" + t + "\"}");
  };
  for (const auto& [p, t] : std::vector<std::pair<std::string, std::string>>{
           {"dicom_echo", "ok"}, {"dicom_find", "ok"}, {"dicom_worklist", "wl"}, {"filesystem", "vol"},
           {"queue_directory", "spool"}, {"queue_orthanc", "jobs"}, {"queue_dcm4chee", "tasks"},
           {"queue_http_json", "router"}}) {
    EXPECT_EQ(success(p, t), 1.0) << p << " " << t << "\n" << text;
  }
  EXPECT_EQ(metric_value(text, "pacs_probe_failures_total{probe=\"dicom_echo\",target=\"rejected\",reason=\"association_rejected\"}")
                .value_or(0) >= 1,
            true)
      << text;
  EXPECT_EQ(success("dicom_echo", "refused"), 0.0);

  if (const char* dump = std::getenv("SERIES_BUDGET_DUMP")) std::ofstream(dump) << text;  // to see where series go
  Counts c = count(text);
  std::map<std::string, int> measured;  // probe -> the most any of its targets costs
  for (const auto& [key, n] : c.per_target) measured[key.first] = std::max(measured[key.first], n);
  measured["agent"] = c.agent;

  auto budget = read_budget();
  std::string report;
  for (const auto& [probe, n] : measured) report += "  " + probe + " " + std::to_string(n) + "\n";
  for (const auto& [probe, n] : measured) {
    auto it = budget.find(probe);
    if (it == budget.end()) {
      ADD_FAILURE() << probe << ": no budget in tests/e2e/series_budget.txt (measured " << n << ")";
      continue;
    }
    EXPECT_LE(n, it->second) << probe << " costs " << n << " series per target, over its budget of " << it->second
                             << ". Keep the count (drop a series no rule or panel uses) or raise the budget in "
                                "tests/e2e/series_budget.txt and docs/scaling.md on purpose.\nmeasured:\n"
                             << report;
    if (n < it->second) {
      std::cout << "note: " << probe << " costs " << n << ", below its budget " << it->second
                << "; lower the budget (and docs/scaling.md) to keep it tight\n";
    }
  }
  for (const auto& [probe, n] : budget) {
    EXPECT_TRUE(measured.count(probe)) << "budget for " << probe << ", which this test never measured";
  }
  std::cout << "measured series per target:\n" << report;

  // docs/scaling.md publishes the same numbers: "| `dicom_echo` | 35 | ..." in "## Series budget".
  std::string doc = read_file(fs::path(source_dir()) / "docs/scaling.md");
  auto sec = doc.find("\n## Series budget");
  ASSERT_NE(sec, std::string::npos) << "docs/scaling.md has no \"## Series budget\" section";
  auto next = doc.find("\n## ", sec + 5);
  std::string section = doc.substr(sec, next == std::string::npos ? std::string::npos : next - sec);
  for (const auto& [probe, n] : budget) {
    std::regex row("\\n\\| `" + probe + "` \\| (\\d+) \\|");
    std::smatch m;
    if (!std::regex_search(section, m, row)) {
      ADD_FAILURE() << "docs/scaling.md \"Series budget\" has no row for `" << probe << "`";
      continue;
    }
    EXPECT_EQ(std::stoi(m[1].str()), n) << "docs/scaling.md and tests/e2e/series_budget.txt disagree on " << probe;
  }
  // The typical node: 20 AEs with echo+find, 4 volumes, 3 spool queues, the agent itself.
  int typical = 20 * (budget["dicom_echo"] + budget["dicom_find"]) + 4 * budget["filesystem"] +
                3 * budget["queue_directory"] + budget["agent"];
  EXPECT_NE(section.find("**" + std::to_string(typical) + " series**"), std::string::npos)
      << "docs/scaling.md should state the typical node's budget as **" << typical << " series**";
}

}  // namespace
}  // namespace pacs::test
