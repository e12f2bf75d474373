// The series budget: how many series one target costs, per check (probe
// label), measured on the built binary with one target per check in each
// state that exports the most (success against real peers, and failures:
// refused, rejected, missing path). Fails when a change raises a count past
// tests/e2e/series_budget.txt, when a check of any kind the agent is built
// with (probes/registry.cpp) has no budget line or is not measured here, and
// when docs/scaling.md ("Series budget") disagrees with that file, so the
// published table cannot rot and a new kind cannot skip the budget.
//
// The peers are the ones the kinds' golden fixtures use
// (probes/*/tests/golden_fixture.cpp): Orthanc (plain, with the DICOMweb
// plugin and basic auth, and one that knows the agent as a C-MOVE and
// storage commitment destination), wlmscpfs, storescp --refuse, the npm MLLP
// listener of the hl7 tests, loopback HTTP servers.
#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "probes/registry.h"

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

std::string today() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  return buf;
}

// Budget lines that are not a probe label: targets whose count goes to
// another line than their check's (a find with group_by costs more than one
// without). A target mapped to "" is measured for a comparison only.
const std::map<std::string, std::string>& line_of_target() {
  static const std::map<std::string, std::string> m = {{"grouped-ct", "dicom_find_group_by"}, {"grouped", ""}};
  return m;
}

// Which budget line a series count of (probe, target) belongs to.
std::string budget_line(const std::string& probe, const std::string& target) {
  auto it = line_of_target().find(target);
  return it == line_of_target().end() ? probe : it->second;
}

// The empty worklist database wlmscpfs serves (AE title WLSCP).
fs::path worklist_db(const TempDir& dir) {
  dir.write("wldb/WLSCP/lockfile", "");
  return dir / "wldb";
}

TEST(SeriesBudget, EveryCheckStaysWithinItsBudgetAndTheDocsAgree) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("wlmscpfs");
  PACS_REQUIRE_PEER("storescp");
  PACS_REQUIRE_PEER("node");
  ASSERT_FALSE(Orthanc::dicomweb_plugin().empty()) << "the Debian orthanc-dicomweb plugin is needed";
  TempDir dir;
  // The plain Orthanc: echo, find (a CT and an MR study dated today for the
  // group_by targets), the job queue and its change log.
  Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  DicomFileSpec ct, mr;
  ct.patient_name = "BUDGET^CT";
  ct.patient_id = "BUDGET-CT";
  ct.study_date = today();
  ct.modality = "CT";
  mr = ct;
  mr.patient_name = "BUDGET^MR";
  mr.patient_id = "BUDGET-MR";
  mr.modality = "MR";
  ASSERT_EQ(orthanc.upload(make_dicom_file(dir / "ct.dcm", ct)), 200);
  ASSERT_EQ(orthanc.upload(make_dicom_file(dir / "mr.dcm", mr)), 200);
  // Orthanc with the DICOMweb plugin and basic auth, one study dated today
  // (as the dicomweb golden fixture).
  Orthanc::Options web_opts;
  web_opts.plugins = {Orthanc::dicomweb_plugin()};
  web_opts.users = {{"monitor", "budget-pw"}};
  web_opts.extra_json = {R"("DicomWeb": { "Enable": true, "Root": "/dicom-web/" })"};
  Orthanc web(web_opts);
  ASSERT_TRUE(web.start()) << web.log();
  ASSERT_EQ(web.upload(make_dicom_file(dir / "web.dcm", "BUDGET^WEB", "BUDGET-WEB", today())), 200);
  auto pw = dir.write("web.pw", "budget-pw\n");
  // The image round trip (as the dicom golden fixture): an Orthanc that knows
  // the agent's SCP as C-MOVE destination and storage commitment peer (one
  // port, the runs take turns).
  const int scp_port = free_port();
  Orthanc::Options img_opts;
  img_opts.aet = "IMAGES";
  img_opts.modalities["agent"] = {"PACS_AGENT", "127.0.0.1", scp_port};
  Orthanc images(img_opts);
  ASSERT_TRUE(images.start()) << images.log();

  int wl_port = free_port();
  Process wl({"wlmscpfs", "-dfp", worklist_db(dir).string(), std::to_string(wl_port)}, dir / "wlmscpfs.log");
  ASSERT_TRUE(wait_for_port(wl_port, 15s)) << wl.log();
  int refuse_port = free_port();  // rejects every association: the access canary's refusal
  Process refuser({"storescp", "--refuse", std::to_string(refuse_port)}, dir / "storescp.log");
  ASSERT_TRUE(wait_for_port(refuse_port, 15s)) << refuser.log();
  // The independent MLLP listener of the hl7 tests (npm node-hl7-server): AA.
  int mllp_port = free_port();
  Process mllp({"node", source_dir() + "/probes/hl7/tests/mllp_peer.js", std::to_string(mllp_port)}, dir / "mllp.log",
               {{"NODE_PATH", PACS_HL7_NODE_MODULES}});
  ASSERT_TRUE(wait_for_port(mllp_port, 30s)) << mllp.log();
  LoopbackHttpServer dcm4chee([](const LoopbackRequest& req) {
    if (req.target.find("/queue/StgCmtSCU/count?status=") == std::string::npos) return LoopbackReply::json("{}", 404);
    return LoopbackReply::json("{\"count\":3}");
  });
  LoopbackHttpServer router([](const LoopbackRequest&) { return LoopbackReply::json("{\"incoming\":{\"depth\":4}}"); });
  // Refuses the STOW-RS canary with a FailureReason (as the dicomweb golden fixture).
  LoopbackHttpServer stow_refuser([](const LoopbackRequest& req) {
    if (req.method != "POST") return LoopbackReply::json("[]");
    std::smatch m;
    std::regex_search(req.body, m, std::regex("1\\.2\\.826\\.0\\.1\\.3680043\\.10\\.999\\.3\\.[0-9.]+"));
    return LoopbackReply::json(R"({"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":[")" + m.str() +
                                   R"("]},"00081197":{"vr":"US","Value":[42752]}}]}})",
                               202);
  });
  int closed = free_port();  // nothing listens: connection_refused
  dir.write("spool/a.dcm", "x");
  dir.write("spool/b.dcm", "yy");
  // Two backups (the newest and the previous size), min_bytes set: every backup gauge.
  dir.write("backups/db-1.sql.gz", std::string(2048, 'b'));
  dir.write("backups/db-2.sql.gz", std::string(4096, 'b'));

  auto dicom = [](const std::string& name, int port, const std::string& aet, const std::string& checks,
                  const std::string& extra = "") {
    return "[[dicom]]\nname = \"" + name + "\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(port) +
           "\ncalled_ae_title = \"" + aet + "\"\nchecks = " + checks + "\n" + extra + "\n";
  };
  const std::string find = "  [dicom.find]\n  keys = { StudyDate = \"today\" }\n";
  const std::string worklist = "  [dicom.worklist]\n  keys = { Modality = \"CT\" }\n";
  const std::string scp = "\"127.0.0.1\"\n  listen_port = " + std::to_string(scp_port) + "\n";
  const std::string auth = "{ type = \"basic\", username = \"monitor\", password_file = \"" + pw.string() + "\" }";
  const std::string stow = "  [dicomweb.stow]\n  uid_root = \"1.2.826.0.1.3680043.10.999\"\n";
  std::string cfg = "[agent]\ninterval = \"1s\"\ntimeout = \"1s\"\ncalling_ae_title = \"PACS_AGENT\"\n\n";
  cfg += dicom("ok", orthanc.dicom_port(), orthanc.aet(), "[\"echo\", \"find\"]", find);
  cfg += dicom("rejected", orthanc.dicom_port(), "NOT_KNOWN", "[\"echo\", \"find\"]", find);
  cfg += dicom("refused", closed, "X", "[\"echo\", \"find\", \"worklist\"]", find + worklist);
  cfg += dicom("wl", wl_port, "WLSCP", "[\"worklist\"]", worklist);
  // Matches per modality: one group (CT) and two groups (CT, MR).
  cfg += dicom("grouped-ct", orthanc.dicom_port(), orthanc.aet(), "[\"find\"]",
               "  [dicom.find]\n  keys = { StudyDate = \"today\", PatientID = \"BUDGET-CT\" }\n"
               "  group_by = \"ModalitiesInStudy\"\n");
  cfg += dicom("grouped", orthanc.dicom_port(), orthanc.aet(), "[\"find\"]",
               "  [dicom.find]\n  keys = { StudyDate = \"today\" }\n  group_by = \"ModalitiesInStudy\"\n");
  // The image round trip with C-MOVE to the agent's SCP (move adds the SCP's
  // reasons to get's) and the commitment report on a new association.
  cfg += dicom("images", images.dicom_port(), "IMAGES", "[\"store\", \"retrieve\", \"commit\"]",
               "interval = \"8s\"\ntimeout = \"6s\"\n"
               "  [dicom.store]\n  uid_root = \"1.2.826.0.1.3680043.10.999\"\n"
               "  cleanup = { type = \"orthanc\", url = \"" + images.url() + "\" }\n"
               "  [dicom.retrieve]\n  method = \"move\"\n  listen_address = " + scp +
               "  [dicom.commit]\n  listen_address = " + scp);
  // The access canary answered (Orthanc lets anyone echo) and refused (a reject).
  cfg += dicom("open", images.dicom_port(), "IMAGES", "[\"access\"]");
  cfg += dicom("closed-door", refuse_port, "ANY", "[\"access\"]");
  cfg += "[[dicomweb]]\nname = \"web\"\nurl = \"" + web.url() +
         "/dicom-web\"\nchecks = [\"qido\", \"wado\"]\ninterval = \"4s\"\ntimeout = \"3s\"\nauth = " + auth + "\n\n";
  cfg += "[[dicomweb]]\nname = \"web-stow\"\nurl = \"" + web.url() +
         "/dicom-web\"\nchecks = [\"stow\"]\ninterval = \"8s\"\ntimeout = \"6s\"\nauth = " + auth + "\n" + stow +
         "  cleanup = { type = \"orthanc\", url = \"" + web.url() + "\", auth = " + auth + " }\n\n";
  cfg += "[[dicomweb]]\nname = \"web-stow-refused\"\nurl = \"" + stow_refuser.url("/dicom-web") +
         "\"\nchecks = [\"stow\"]\ninterval = \"4s\"\ntimeout = \"3s\"\n" + stow + "  cleanup = { type = \"none\" }\n\n";
  cfg += "[[hl7]]\nname = \"mllp\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(mllp_port) +
         "\nmessage_type = \"ADT^A08\"\ninterval = \"2s\"\ntimeout = \"2s\"\n\n";
  cfg += "[[backup]]\nname = \"backups\"\npath = \"" + (dir / "backups").string() +
         "\"\npattern = \"*.sql.gz\"\nmin_bytes = 1024\n\n";
  cfg += "[[filesystem]]\nname = \"vol\"\npath = \"" + dir.path().string() + "\"\n\n";
  cfg += "[[filesystem]]\nname = \"vol-missing\"\npath = \"" + (dir / "missing").string() + "\"\n\n";
  cfg += "[[queue]]\nname = \"spool\"\ntype = \"directory\"\npath = \"" + (dir / "spool").string() + "\"\n\n";
  cfg += "[[queue]]\nname = \"spool-missing\"\ntype = \"directory\"\npath = \"" + (dir / "missing").string() +
         "\"\n\n";
  // The change log follower keeps its state file in the test's folder.
  cfg += "[[queue]]\nname = \"jobs\"\ntype = \"orthanc\"\nurl = \"" + orthanc.url() + "\"\nstate_file = \"" +
         (dir / "jobs.orthanc-changes.json").string() + "\"\n\n";
  cfg += "[[queue]]\nname = \"jobs-refused\"\ntype = \"orthanc\"\nurl = \"http://127.0.0.1:" + std::to_string(closed) +
         "\"\nstate_file = \"" + (dir / "jobs-refused.orthanc-changes.json").string() + "\"\n\n";
  cfg += "[[queue]]\nname = \"tasks\"\ntype = \"dcm4chee\"\nurl = \"http://127.0.0.1:" +
         std::to_string(dcm4chee.port()) + "\"\nqueues = [\"StgCmtSCU\"]\n\n";
  cfg += "[[queue]]\nname = \"router\"\ntype = \"http_json\"\nurl = \"http://127.0.0.1:" +
         std::to_string(router.port()) + "\"\n  [[queue.values]]\n  name = \"incoming\"\n  pointer = \"/incoming/depth\"\n";
  auto file = dir.write("agent.toml", cfg);

  int port = free_port();
  Process agent({agent_binary(), "--config.file=" + file.string(), "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                dir / "agent.log");
  ASSERT_TRUE(wait_for_port(port, 15s)) << agent.log();

  using Pair = std::pair<std::string, std::string>;
  // Every target of the config, and those whose measured state is a success.
  const std::vector<Pair> failing = {
      {"dicom_echo", "rejected"},    {"dicom_find", "rejected"},          {"dicom_echo", "refused"},
      {"dicom_find", "refused"},     {"dicom_worklist", "refused"},       {"filesystem", "vol-missing"},
      {"queue_directory", "spool-missing"}, {"queue_orthanc", "jobs-refused"}, {"dicom_access", "open"},
      {"dicomweb_stow", "web-stow-refused"}};
  const std::vector<Pair> succeeding = {
      {"dicom_echo", "ok"},           {"dicom_find", "ok"},            {"dicom_find", "grouped-ct"},
      {"dicom_find", "grouped"},      {"dicom_worklist", "wl"},        {"dicom_store", "images"},
      {"dicom_retrieve", "images"},   {"dicom_commit", "images"},      {"dicom_access", "closed-door"},
      {"dicomweb_qido", "web"},       {"dicomweb_wado", "web"},        {"dicomweb_stow", "web-stow"},
      {"hl7", "mllp"},                {"backup", "backups"},           {"filesystem", "vol"},
      {"queue_directory", "spool"},   {"queue_orthanc", "jobs"},       {"queue_dcm4chee", "tasks"},
      {"queue_http_json", "router"}};
  // Settled: every probe has finished two runs (the second one sees a settled
  // peer), and the successes all show in the same scrape (the image checks
  // share one SCP port and may wait for each other under load).
  std::string text;
  auto success = [&](const std::string& p, const std::string& t) {
    return metric_value(text, "pacs_probe_success{probe=\"" + p + "\",target=\"" + t + "\"}");
  };
  auto settled = [&] {
    text = http_get(port, "/metrics").body;
    for (const auto* list : {&failing, &succeeding}) {
      for (const auto& [p, t] : *list) {
        if (metric_value(text, "pacs_probe_runs_total{probe=\"" + p + "\",target=\"" + t + "\"}").value_or(0) < 2) {
          return false;
        }
      }
    }
    for (const auto& [p, t] : succeeding) {
      if (success(p, t) != 1.0) return false;
    }
    return true;
  };
  auto end = std::chrono::steady_clock::now() + 180s;
  while (!settled() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(250ms);
  ASSERT_TRUE(settled()) << text << agent.log();
  // The failure states this test relies on really happened.
  auto failures = [&](const std::string& p, const std::string& t, const std::string& reason) {
    return metric_value(text, "pacs_probe_failures_total{probe=\"" + p + "\",target=\"" + t + "\",reason=\"" + reason +
                                  "\"}")
        .value_or(0);
  };
  EXPECT_GE(failures("dicom_echo", "rejected", "association_rejected"), 1) << text;
  EXPECT_GE(failures("dicom_echo", "refused", "connection_refused"), 1) << text;
  EXPECT_GE(failures("dicom_access", "open", "access_not_enforced"), 1) << text;
  EXPECT_GE(failures("dicomweb_stow", "web-stow-refused", "dimse_status"), 1) << text;
  EXPECT_GE(failures("queue_orthanc", "jobs-refused", "connection_refused"), 1) << text;
  for (const auto& [p, t] : failing) EXPECT_EQ(success(p, t), 0.0) << p << " " << t;
  // The per-group cost is what the budget file says: two groups here, one there.
  EXPECT_EQ(metric_value(text, "pacs_dicom_find_matches{probe=\"dicom_find\",target=\"grouped\",group=\"MR\"}"), 1.0)
      << text;
  EXPECT_FALSE(metric_value(text, "pacs_dicom_find_matches{probe=\"dicom_find\",target=\"grouped-ct\",group=\"MR\"}"))
      << text;

  if (const char* dump = std::getenv("SERIES_BUDGET_DUMP")) std::ofstream(dump) << text;  // to see where series go
  Counts c = count(text);
  std::map<std::string, int> measured;  // budget line -> the most any of its targets costs
  for (const auto& [key, n] : c.per_target) {
    std::string line = budget_line(key.first, key.second);
    if (!line.empty()) measured[line] = std::max(measured[line], n);
  }
  measured["agent"] = c.agent;
  const int per_group = c.per_target[{"dicom_find", "grouped"}] - c.per_target[{"dicom_find", "grouped-ct"}];
  EXPECT_EQ(per_group, 2) << "a modality group costs its matches and its newest age";

  auto budget = read_budget();
  std::string report;
  for (const auto& [line, n] : measured) report += "  " + line + " " + std::to_string(n) + "\n";
  for (const auto& [line, n] : measured) {
    auto it = budget.find(line);
    if (it == budget.end()) {
      ADD_FAILURE() << line << ": exported, but no budget in tests/e2e/series_budget.txt (measured " << n
                    << "); add a line and a docs/scaling.md row";
      continue;
    }
    EXPECT_LE(n, it->second) << line << " costs " << n << " series per target, over its budget of " << it->second
                             << ". Keep the count (drop a series no rule or panel uses) or raise the budget in "
                                "tests/e2e/series_budget.txt and docs/scaling.md on purpose.\nmeasured:\n"
                             << report;
    if (n < it->second) {
      std::cout << "note: " << line << " costs " << n << ", below its budget " << it->second
                << "; lower the budget (and docs/scaling.md) to keep it tight\n";
    }
  }
  for (const auto& [line, n] : budget) {
    EXPECT_TRUE(measured.count(line)) << "budget for " << line << ", which this test never measured";
  }
  // Every check of every kind the agent is built with has a line and a target
  // here: a new kind or check fails this test until it is measured.
  for (const Kind* k : kinds()) {
    for (const auto& check : k->checks) {
      std::string probe(check.probe);
      EXPECT_TRUE(budget.count(probe)) << "kind " << k->name << ", check " << check.check << ": no budget line for `"
                                       << probe << "` in tests/e2e/series_budget.txt";
      EXPECT_TRUE(measured.count(probe)) << "kind " << k->name << ", check " << check.check << " (`" << probe
                                         << "`): no target in this test measures it; add one in its most expensive "
                                            "state";
    }
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
