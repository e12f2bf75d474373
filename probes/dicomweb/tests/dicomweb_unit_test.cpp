// dicomweb kind without a network: config validation with exact messages,
// the QIDO-RS URL, and the sample config.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "agent/config.h"
#include "probes/dicomweb/dicomweb.h"
#include "probes/log.h"
#include "tests/support/probe_testing.h"

namespace pacs::dicomweb {
namespace {

class KindEnv : public ::testing::Environment {
 public:
  void SetUp() override { kind().init(log_); }  // the DICOM dictionary checks the QIDO keys
  void TearDown() override { kind().shutdown(); }

 private:
  Logger log_{LogLevel::error};
};
const auto* const kKindEnv = ::testing::AddGlobalTestEnvironment(new KindEnv);

std::string today() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  return buf;
}

TEST(DicomWebQuery, UrlWithEscapedValuesAndToday) {
  EXPECT_EQ(qido_url("http://h/dw", {}), "http://h/dw/studies");
  EXPECT_EQ(qido_url("http://h/dw", {{"StudyDate", "today"}, {"PatientName", "A^B*"}}, 1),
            "http://h/dw/studies?StudyDate=" + today() + "&PatientName=A%5EB%2A&limit=1");
  EXPECT_EQ(qido_url("http://h/dw", {{"StudyDate", "TODAY"}}), "http://h/dw/studies?StudyDate=" + today());
  EXPECT_EQ(expand_value("20240101-"), "20240101-");
}

std::shared_ptr<const Config> parse(const std::string& body) {
  return parse_config("[[dicomweb]]\nname = \"web\"\n" + body, "t.toml");
}

TEST(DicomWebConfig, ChecksBecomeProbesWithTheirReasons) {
  auto c = parse("url = \"https://pacs/dicom-web/\"\nchecks = [\"qido\", \"wado\"]\n");
  ASSERT_EQ(c->probes.size(), 2u);
  EXPECT_EQ(c->probes[0].probe, "dicomweb_qido");
  EXPECT_EQ(c->probes[1].probe, "dicomweb_wado");
  auto has = [](const ProbeSpec& s, Reason r) { return std::count(s.reasons.begin(), s.reasons.end(), r) == 1; };
  EXPECT_TRUE(has(c->probes[0], Reason::tls_failure));
  EXPECT_TRUE(has(c->probes[0], Reason::response_timeout));
  EXPECT_FALSE(has(c->probes[0], Reason::no_match));
  EXPECT_TRUE(has(c->probes[1], Reason::no_match));
  auto stow = parse("url = \"http://pacs/dicom-web\"\nchecks = [\"stow\"]\n[dicomweb.stow]\nuid_root = \"1.2.3\"\n"
                    "cleanup = { type = \"orthanc\", url = \"http://pacs:8042\" }\n");
  ASSERT_EQ(stow->probes.size(), 1u);
  EXPECT_EQ(stow->probes[0].probe, "dicomweb_stow");
  EXPECT_TRUE(has(stow->probes[0], Reason::stored_not_found));
  EXPECT_TRUE(has(stow->probes[0], Reason::dimse_status));
  EXPECT_FALSE(has(stow->probes[0], Reason::tls_failure));
  auto plain = parse("url = \"http://pacs/dicom-web\"\n");
  ASSERT_EQ(plain->probes.size(), 1u);
  EXPECT_EQ(plain->probes[0].probe, "dicomweb_qido");
  EXPECT_FALSE(has(plain->probes[0], Reason::tls_failure));
}

struct BadCase {
  const char* name;
  std::string body;  // after [[dicomweb]] name = "web" (lines 1-2)
  std::string error;
};

class InvalidDicomWebConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(InvalidDicomWebConfig, IsRejectedWithFileLineAndKey) {
  test::expect_config_error("[[dicomweb]]\nname = \"web\"\n" + GetParam().body, GetParam().error);
}

const std::string kUrl = "url = \"http://pacs/dicom-web\"\n";

INSTANTIATE_TEST_SUITE_P(
    DicomWeb, InvalidDicomWebConfig,
    ::testing::Values(
        BadCase{"no_url", "checks = [\"qido\"]\n", "t.toml:1: dicomweb[0]: missing required key \"url\""},
        BadCase{"bad_url", "url = \"pacs/dicom-web\"\n", "t.toml:3: dicomweb[0].url: must be an http:// or https:// URL"},
        BadCase{"credentials_in_url", "url = \"http://u:p@pacs/dicom-web\"\n",
                "t.toml:3: dicomweb[0].url: must not contain credentials; use username with password_file or password_env"},
        BadCase{"unknown_check", kUrl + "checks = [\"qido\", \"mwl\"]\n",
                "t.toml:4: dicomweb[0].checks: unknown check \"mwl\" (valid: qido, wado, stow)"},
        BadCase{"empty_checks", kUrl + "checks = []\n", "t.toml:4: dicomweb[0].checks: must not be empty (valid: qido, wado, stow)"},
        BadCase{"duplicate_check", kUrl + "checks = [\"qido\", \"qido\"]\n",
                "t.toml:4: dicomweb[0].checks: duplicate check \"qido\""},
        BadCase{"wado_table_without_check", kUrl + "[dicomweb.wado]\nstudy_uid = \"1.2.3\"\n",
                "t.toml:4: dicomweb[0].wado: settings for \"wado\" but \"wado\" is not in checks"},
        BadCase{"unknown_attribute", kUrl + "[dicomweb.qido]\nkeys = { StudyDat = \"today\" }\n",
                "t.toml:5: dicomweb[0].qido.keys.StudyDat: unknown DICOM attribute \"StudyDat\" (not in the DCMTK data "
                "dictionary; use keywords such as StudyDate)"},
        BadCase{"bad_uid", kUrl + "checks = [\"wado\"]\n[dicomweb.wado]\nstudy_uid = \"1.2.x\"\n",
                "t.toml:6: dicomweb[0].wado.study_uid: must be a DICOM UID (digits and dots, at most 64 characters)"},
        BadCase{"uid_and_keys", kUrl + "checks = [\"wado\"]\n[dicomweb.wado]\nstudy_uid = \"1.2\"\nkeys = { Modality = \"CT\" }\n",
                "t.toml:7: dicomweb[0].wado.keys: set either study_uid or keys, not both"},
        BadCase{"basic_without_password", kUrl + "auth = { type = \"basic\", username = \"u\" }\n",
                "t.toml:4: dicomweb[0].auth: basic auth needs exactly one of password_file or password_env (passwords "
                "are never written in the config)"},
        BadCase{"stow_without_table", kUrl + "checks = [\"stow\"]\n",
                "t.toml:4: dicomweb[0].checks: \"stow\" writes a canary object into the archive: it needs a "
                "[dicomweb.stow] table with uid_root and cleanup"},
        BadCase{"stow_without_uid_root", kUrl + "checks = [\"stow\"]\n[dicomweb.stow]\ncleanup = { type = \"none\" }\n",
                "t.toml:5: dicomweb[0].stow: missing required key \"uid_root\": the site's DICOM UID root under which "
                "the agent generates the canary's UIDs (e.g. \"1.2.826.0.1.3680043.10.999\")"},
        BadCase{"stow_without_cleanup", kUrl + "checks = [\"stow\"]\n[dicomweb.stow]\nuid_root = \"1.2.3\"\n",
                "t.toml:5: dicomweb[0].stow: cleanup is required: cleanup = { type = \"orthanc\" | \"dcm4chee\" | "
                "\"none\", ... } (what deletes the canary studies again)"},
        BadCase{"flat_keys_not_here", kUrl + "username = \"u\"\n", "t.toml:4: dicomweb[0].username: unknown key"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(DicomWebConfig, SampleFileParsesWithTheRealLoader) {
  const char* src = std::getenv("PACS_SOURCE_DIR");
  std::ifstream in(std::string(src ? src : PACS_SOURCE_DIR) + "/probes/dicomweb/sample.toml");
  ASSERT_TRUE(in) << "cannot open probes/dicomweb/sample.toml";
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = parse_config(ss.str(), "sample.toml");
  ASSERT_EQ(c->probes.size(), 4u);
  EXPECT_EQ(c->probes[0].probe, "dicomweb_qido");
  EXPECT_EQ(c->probes[1].probe, "dicomweb_wado");
  EXPECT_EQ(c->probes[2].target, "orthanc-web");
  EXPECT_EQ(c->probes[3].probe, "dicomweb_stow");
}

}  // namespace
}  // namespace pacs::dicomweb
