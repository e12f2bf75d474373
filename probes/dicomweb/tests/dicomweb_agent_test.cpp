// The built agent with dicomweb targets against Orthanc (DICOMweb plugin,
// basic auth): scheduled runs, /probe?target=NAME for each check, and no
// patient name, ID or study UID in /metrics, /probe, the status page or the
// debug log although QIDO-RS and WADO-RS returned them to the agent.
#include <signal.h>

#include <chrono>
#include <ctime>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/support.h"

namespace pacs::test {
namespace {

using namespace std::chrono_literals;

TEST(DicomWebAgent, ProbeEndpointAndNoPhiAnywhere) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  if (Orthanc::dicomweb_plugin().empty()) {
    if (std::getenv("CI")) FAIL() << "orthanc-dicomweb is not installed";
    GTEST_SKIP() << "orthanc-dicomweb is not installed";
  }
  TempDir dir;
  Orthanc::Options o;
  o.plugins = {Orthanc::dicomweb_plugin()};
  o.users = {{"monitor", "agent-pw"}};
  o.extra_json = {R"("DicomWeb": { "Enable": true, "Root": "/dicom-web/" })"};
  Orthanc orthanc(o);
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  const std::string phi_name = "PHI^WEBAGENT", phi_id = "PHI-WEBAGENT-ID";
  char today[16];
  std::time_t now = std::time(nullptr);
  std::strftime(today, sizeof today, "%Y%m%d", std::localtime(&now));
  ASSERT_EQ(orthanc.upload(make_dicom_file(dir / "canary.dcm", phi_name, phi_id, today)), 200);
  auto studies = nlohmann::json::parse(orthanc.rest("GET", "/studies").body);
  ASSERT_EQ(studies.size(), 1u);
  const std::string uid = nlohmann::json::parse(orthanc.rest("GET", "/studies/" + studies[0].get<std::string>()).body)
                              ["MainDicomTags"]["StudyInstanceUID"];
  // Control: the DICOMweb answers the agent gets carry the canary.
  auto qido = orthanc.rest("GET", "/dicom-web/studies?StudyDate=" + std::string(today));
  ASSERT_NE(qido.body.find(phi_id), std::string::npos);
  ASSERT_NE(qido.body.find(uid), std::string::npos);
  auto meta = orthanc.rest("GET", "/dicom-web/studies/" + uid + "/metadata");
  ASSERT_NE(meta.body.find(phi_name), std::string::npos);

  auto pw = dir.write("dicomweb.pw", "agent-pw\n");
  int agent_port = free_port();
  auto cfg = dir.write("agent.toml",
                       "[[dicomweb]]\nname = \"viewer-api\"\nurl = \"" + orthanc.url() +
                           "/dicom-web/\"\nchecks = [\"qido\", \"wado\"]\ninterval = \"2s\"\ntimeout = \"2s\"\n"
                           "auth = { type = \"basic\", username = \"monitor\", password_file = \"" +
                           pw.string() + "\" }\n  [dicomweb.qido]\n  keys = { StudyDate = \"today\" }\n");
  Process agent({agent_binary(), "--config.file=" + cfg.string(),
                 "--web.listen-address=127.0.0.1:" + std::to_string(agent_port), "--log.level=debug"},
                dir / "agent.log");
  ASSERT_TRUE(wait_for_port(agent_port, 10s)) << agent.log();

  std::string metrics;
  for (auto end = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < end;
       std::this_thread::sleep_for(100ms)) {
    metrics = http_get(agent_port, "/metrics").body;
    if (metric_value(metrics, "pacs_probe_runs_total{probe=\"dicomweb_wado\",target=\"viewer-api\"}").value_or(0) >= 2 &&
        metric_value(metrics, "pacs_probe_runs_total{probe=\"dicomweb_qido\",target=\"viewer-api\"}").value_or(0) >= 2) {
      break;
    }
  }
  EXPECT_EQ(metric_value(metrics, "pacs_probe_success{probe=\"dicomweb_qido\",target=\"viewer-api\"}"), 1.0) << metrics;
  EXPECT_EQ(metric_value(metrics, "pacs_dicomweb_qido_matches{probe=\"dicomweb_qido\",target=\"viewer-api\"}"), 1.0) << metrics;
  EXPECT_EQ(metric_value(metrics, "pacs_probe_success{probe=\"dicomweb_wado\",target=\"viewer-api\"}"), 1.0) << metrics;
  EXPECT_EQ(metric_value(metrics, "pacs_dicomweb_wado_instances{probe=\"dicomweb_wado\",target=\"viewer-api\"}"), 1.0)
      << metrics;
  EXPECT_EQ(metric_value(metrics, "pacs_probe_failures_total{probe=\"dicomweb_wado\",target=\"viewer-api\",reason=\"no_match\"}"),
            0.0)
      << metrics;

  auto probe = http_get(agent_port, "/probe?target=viewer-api");
  EXPECT_EQ(probe.status, 200);
  EXPECT_EQ(metric_value(probe.body, "probe_success"), 1.0) << probe.body;
  EXPECT_EQ(metric_value(probe.body, "pacs_dicomweb_qido_matches{probe=\"dicomweb_qido\",target=\"viewer-api\"}"), 1.0)
      << probe.body;
  EXPECT_TRUE(metric_value(probe.body, "pacs_probe_success{probe=\"dicomweb_wado\",target=\"viewer-api\"}")) << probe.body;
  auto wado_only = http_get(agent_port, "/probe?target=viewer-api&check=wado");
  EXPECT_EQ(metric_value(wado_only.body, "probe_success"), 1.0) << wado_only.body;
  EXPECT_FALSE(metric_value(wado_only.body, "pacs_probe_success{probe=\"dicomweb_qido\",target=\"viewer-api\"}"))
      << wado_only.body;
  auto debug = http_get(agent_port, "/probe?target=viewer-api&check=dicomweb_wado&debug=true");
  auto status = http_get(agent_port, "/").body;

  agent.kill_signal(SIGTERM);
  ASSERT_TRUE(agent.wait_exit(15s));
  const std::string logs = agent.log();
  EXPECT_NE(logs.find("level=debug"), std::string::npos) << "debug logging was not on";
  for (const std::string& secret : {phi_name, phi_id, uid, std::string("PHI^")}) {
    EXPECT_EQ(metrics.find(secret), std::string::npos) << secret << " in /metrics";
    EXPECT_EQ(probe.body.find(secret), std::string::npos) << secret << " in /probe";
    EXPECT_EQ(debug.body.find(secret), std::string::npos) << secret << " in /probe?debug=true";
    EXPECT_EQ(status.find(secret), std::string::npos) << secret << " in the status page";
    EXPECT_EQ(logs.find(secret), std::string::npos) << secret << " in the agent's debug log";
  }
}

}  // namespace
}  // namespace pacs::test
