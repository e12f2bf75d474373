// The canary against a real Orthanc (Debian package) on 127.0.0.1: Orthanc
// accepts the Part-10 bytes, shows the test patient and the agent's study
// description, and the cleanup deletes exactly the canary's study — another
// study of the same test patient stays (the control that it never deletes by
// patient).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdict.h"

#include "probes/lib/canary/canary.h"
#include "tests/support/support.h"

namespace pacs::canary {
namespace {

using namespace std::chrono_literals;

class Env : public ::testing::Environment {
 public:
  void SetUp() override { http::global_init(); }
  void TearDown() override { http::global_shutdown(); }
};
[[maybe_unused]] const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new Env);

ProbeContext ctx_for(Duration d) {
  ProbeContext c;
  c.deadline = Clock::now() + d;
  return c;
}

nlohmann::json get_json(const test::Orthanc& o, const std::string& path) {
  auto r = test::http_get(o.http_port(), path);
  EXPECT_EQ(r.status, 200) << path << ": " << r.body;
  return r.status == 200 ? nlohmann::json::parse(r.body) : nlohmann::json();
}

int upload(test::Orthanc& o, const test::TempDir& tmp, const Object& obj) {
  auto f = tmp / (obj.uids().instance + ".dcm");
  std::ofstream(f, std::ios::binary) << obj.part10();
  return o.upload(f);
}

TEST(CanaryOrthanc, Part10AcceptedAndCleanupDeletesOnlyTheCanaryStudy) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  test::Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  test::TempDir tmp;

  Settings s;
  s.uid_root = "1.2.826.0.1.3680043.10.999";
  s.cleanup.type = Cleanup::Type::orthanc;
  s.cleanup.url = orthanc.url();
  auto canary = make_object(s, "pacs-agent canary test");
  ASSERT_EQ(upload(orthanc, tmp, canary), 200);
  // Control: another study of the very same test patient, not ours to delete.
  ASSERT_EQ(orthanc.upload(test::make_dicom_file(tmp / "other.dcm", "ZZ_PACS_AGENT^CANARY", "PACS-AGENT-CANARY",
                                                 "20240101")),
            200);

  auto studies = get_json(orthanc, "/studies?expand");
  ASSERT_EQ(studies.size(), 2u) << studies.dump();
  int ours = 0;
  for (const auto& st : studies) {
    EXPECT_EQ(st["PatientMainDicomTags"]["PatientID"], "PACS-AGENT-CANARY");
    if (st["MainDicomTags"]["StudyInstanceUID"] == canary.uids().study) {
      ++ours;
      EXPECT_EQ(st["MainDicomTags"]["StudyDescription"], "pacs-agent canary: synthetic test object, safe to delete");
    }
  }
  EXPECT_EQ(ours, 1);

  auto o = cleanup_study(s.cleanup, canary.uids().study, ctx_for(5s));
  EXPECT_EQ(o.status, CleanupOutcome::Status::deleted) << o.message;
  studies = get_json(orthanc, "/studies?expand");
  ASSERT_EQ(studies.size(), 1u) << studies.dump();
  EXPECT_NE(studies[0]["MainDicomTags"]["StudyInstanceUID"], canary.uids().study);
  EXPECT_EQ(studies[0]["PatientMainDicomTags"]["PatientID"], "PACS-AGENT-CANARY");

  auto again = cleanup_study(s.cleanup, canary.uids().study, ctx_for(5s));
  EXPECT_EQ(again.status, CleanupOutcome::Status::not_found) << again.message;
  EXPECT_EQ(again.message, "Orthanc does not know the canary study");
  EXPECT_EQ(get_json(orthanc, "/studies").size(), 1u);
}

TEST(CanaryOrthanc, CredentialsFromFileWrongPasswordIsHttpStatus) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc::Options opts;
  // Repeated keys: Orthanc's JSON reader keeps the last one.
  opts.extra_json = {"\"AuthenticationEnabled\": true", "\"RegisteredUsers\": {\"agent\": \"s3cret\"}"};
  test::Orthanc orthanc(opts);
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  test::TempDir tmp;
  Settings s;
  s.uid_root = "1.2.3";
  s.cleanup.type = Cleanup::Type::orthanc;
  s.cleanup.url = orthanc.url();
  s.cleanup.http.auth.type = http::Auth::Type::basic;
  s.cleanup.http.auth.username = "agent";
  s.cleanup.http.auth.password_file = tmp.write("pw", "s3cret\n").string();
  auto canary = make_object(s, "x");
  auto f = tmp / "c.dcm";
  std::ofstream(f, std::ios::binary) << canary.part10();
  std::ifstream in(f, std::ios::binary);
  std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // "agent:s3cret"
  ASSERT_EQ(test::http_request(orthanc.http_port(), "POST", "/instances",
                               {{"Content-Type", "application/dicom"}, {"Authorization", "Basic YWdlbnQ6czNjcmV0"}}, body)
                .status,
            200);

  auto bad = s.cleanup;
  bad.http.auth.password_file = tmp.write("bad", "guess\n").string();
  auto o = cleanup_study(bad, canary.uids().study, ctx_for(5s));
  EXPECT_EQ(o.status, CleanupOutcome::Status::failed);
  EXPECT_EQ(o.reason, Reason::http_status);
  EXPECT_EQ(o.message, "Orthanc /tools/lookup failed: HTTP 401");

  auto ok = cleanup_study(s.cleanup, canary.uids().study, ctx_for(5s));
  EXPECT_EQ(ok.status, CleanupOutcome::Status::deleted) << ok.message;
}

}  // namespace
}  // namespace pacs::canary
