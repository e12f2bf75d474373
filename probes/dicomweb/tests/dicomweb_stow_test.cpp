// STOW-RS of the shared canary against a real Orthanc (DICOMweb plugin, basic
// auth, the canary's Orthanc cleanup), and against scripted loopback servers
// for what Orthanc cannot be made to do (refuse the canary with a
// FailureReason, say "stored" and never show it).
#include <chrono>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "probes/dicomweb/dicomweb.h"
#include "probes/log.h"
#include "tests/support/http_test_server.h"
#include "tests/support/probe_testing.h"
#include "tests/support/support.h"

namespace pacs::dicomweb {
namespace {

using namespace std::chrono_literals;
using test::ctx_for;
using test::find_sample;
using test::sample_value;

constexpr const char* kRoot = "1.2.826.0.1.3680043.10.999";

struct StowRun {
  ProbeResult result;
  double seconds = 0;
  std::string transcript;
};

StowRun stow(const Target& t, const canary::Settings& c, Duration timeout = 10s) {
  Transcript tr;
  auto ctx = ctx_for(timeout);
  ctx.transcript = &tr;
  auto start = Clock::now();
  StowRun r;
  r.result = StowProbe(t, c).run(ctx);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.transcript = tr.text();
  return r;
}

std::string describe(const StowRun& r) {
  return std::string(to_string(r.result.reason)) + ": " + r.result.message + "\n" + r.transcript;
}

// Orthanc's own count of studies, and of the canary patient's.
size_t studies(test::Orthanc& o) { return nlohmann::json::parse(o.rest("GET", "/studies").body).size(); }
size_t canary_studies(test::Orthanc& o) {
  auto r = o.rest("POST", "/tools/find", R"({"Level":"Study","Query":{"PatientID":"PACS-AGENT-CANARY"}})");
  return nlohmann::json::parse(r.body).size();
}

class DicomWebStow : public ::testing::Test {
 protected:
  void SetUp() override {
    PACS_REQUIRE_PEER("Orthanc");
    PACS_REQUIRE_PEER("dump2dcm");
    if (test::Orthanc::dicomweb_plugin().empty()) {
      if (std::getenv("CI")) FAIL() << "orthanc-dicomweb is not installed";
      GTEST_SKIP() << "orthanc-dicomweb is not installed";
    }
    test::Orthanc::Options o;
    o.plugins = {test::Orthanc::dicomweb_plugin()};
    o.users = {{"monitor", "stow-pw"}};
    o.extra_json = {R"("DicomWeb": { "Enable": true, "Root": "/dicom-web/" })"};
    orthanc_ = std::make_unique<test::Orthanc>(o);
    ASSERT_TRUE(orthanc_->start()) << orthanc_->log();
    // A real study of another patient, which no cleanup may touch.
    ASSERT_EQ(orthanc_->upload(test::make_dicom_file(dir_ / "other.dcm", "OTHER^PATIENT", "OTHER1", "20240101")), 200);
    auto pw = dir_.write("pw", "stow-pw\n");
    target_.url = orthanc_->url() + "/dicom-web";
    target_.http.auth.type = http::Auth::Type::basic;
    target_.http.auth.username = "monitor";
    target_.http.auth.password_file = pw.string();
    canary_.uid_root = kRoot;
    canary_.cleanup.type = canary::Cleanup::Type::orthanc;
    canary_.cleanup.url = orthanc_->url();
    canary_.cleanup.http = target_.http;
  }
  void TearDown() override {
    if (orthanc_) orthanc_->stop();
  }
  test::TempDir dir_;
  std::unique_ptr<test::Orthanc> orthanc_;
  Target target_;
  canary::Settings canary_;
};

TEST_F(DicomWebStow, StoreFindBackAndCleanupTenTimesInARowWithoutLeftovers) {
  std::vector<double> findable;
  for (int i = 0; i < 10; ++i) {
    auto r = stow(target_, canary_);
    ASSERT_TRUE(r.result.success) << "run " << i << ": " << describe(r);
    EXPECT_EQ(sample_value(r.result, "pacs_dicomweb_canary_cleanup_success"), 1) << describe(r);
    EXPECT_EQ(sample_value(r.result, "pacs_dicomweb_canary_studies"), 0) << describe(r);
    EXPECT_EQ(sample_value(r.result, "pacs_http_status_code"), 200) << describe(r);
    findable.push_back(sample_value(r.result, "pacs_dicomweb_stow_findable_seconds"));
    EXPECT_GT(sample_value(r.result, "pacs_dicomweb_response_seconds"), 0);
    if (i == 0) {
      EXPECT_NE(r.transcript.find("POST  " + orthanc_->url() + "/dicom-web/studies ("), std::string::npos) << r.transcript;
      EXPECT_NE(r.transcript.find("STOW-RS  the canary is in ReferencedSOPSequence"), std::string::npos) << r.transcript;
      EXPECT_NE(r.transcript.find("QIDO-RS  canary found after"), std::string::npos) << r.transcript;
      EXPECT_EQ(r.transcript.find(kRoot), std::string::npos) << "no UID in the transcript: " << r.transcript;
      EXPECT_EQ(r.result.message.find(kRoot), std::string::npos) << r.result.message;
    }
  }
  EXPECT_EQ(canary_studies(*orthanc_), 0u);
  EXPECT_EQ(studies(*orthanc_), 1u) << "the other patient's study must stay";
  for (double f : findable) EXPECT_GE(f, 0);
}

// The control for the test above: without cleanup the canary really is in
// the archive (as the test patient, under uid_root), one study per run.
TEST_F(DicomWebStow, WithoutCleanupTheCanaryStaysAndIsCounted) {
  canary_.cleanup.type = canary::Cleanup::Type::none;
  for (int i = 1; i <= 2; ++i) {
    auto r = stow(target_, canary_);
    ASSERT_TRUE(r.result.success) << describe(r);
    EXPECT_FALSE(find_sample(r.result, "pacs_dicomweb_canary_cleanup_success"));
    EXPECT_EQ(sample_value(r.result, "pacs_dicomweb_canary_studies"), i);
  }
  ASSERT_EQ(canary_studies(*orthanc_), 2u);
  auto ids = nlohmann::json::parse(
      orthanc_->rest("POST", "/tools/find", R"({"Level":"Study","Query":{"PatientID":"PACS-AGENT-CANARY"},"Expand":true})")
          .body);
  for (const auto& s : ids) {
    EXPECT_EQ(s["MainDicomTags"]["StudyInstanceUID"].get<std::string>().rfind(std::string(kRoot) + ".", 0), 0u);
    EXPECT_EQ(s["PatientMainDicomTags"]["PatientName"], "ZZ_PACS_AGENT^CANARY");
  }
  // The next run with cleanup deletes only its own canary.
  canary_.cleanup.type = canary::Cleanup::Type::orthanc;
  auto r = stow(target_, canary_);
  ASSERT_TRUE(r.result.success) << describe(r);
  EXPECT_EQ(sample_value(r.result, "pacs_dicomweb_canary_studies"), 2);
}

TEST_F(DicomWebStow, WrongPasswordIsHttpStatus401AndNothingStored) {
  target_.http.auth.password_file = dir_.write("wrong", "nope\n").string();
  auto r = stow(target_, canary_);
  EXPECT_EQ(r.result.reason, Reason::http_status) << describe(r);
  EXPECT_EQ(sample_value(r.result, "pacs_http_status_code"), 401);
  EXPECT_EQ(canary_studies(*orthanc_), 0u);
}

// ---- scripted servers --------------------------------------------------------

// The canary's SOP Instance UID, read from the posted Part-10 bytes (the
// agent generates it under uid_root; instance UIDs are <root>.3.<...>).
std::string posted_instance_uid(const std::string& body) {
  std::smatch m;
  std::regex re(std::string(kRoot) + "\\.3\\.[0-9.]+");
  return std::regex_search(body, m, re) ? m.str() : "";
}

TEST(DicomWebStowScripted, FailedSopSequenceIsDimseStatusWithTheFailureReason) {
  test::LoopbackHttpServer srv([](const test::LoopbackRequest& req) {
    if (req.method != "POST") return test::LoopbackReply::json("[]");
    EXPECT_NE(req.headers.at("content-type").find("multipart/related; type=\"application/dicom\"; boundary="),
              std::string::npos);
    const auto uid = posted_instance_uid(req.body);
    EXPECT_FALSE(uid.empty()) << "control: the Part-10 canary was posted";
    return test::LoopbackReply::json(R"({"00081198":{"vr":"SQ","Value":[{"00081150":{"vr":"UI","Value":["1.2.840.10008.5.1.4.1.1.7"]},"00081155":{"vr":"UI","Value":[")" +
                                         uid + R"("]},"00081197":{"vr":"US","Value":[42752]}}]}})",
                                     202);
  });
  Target t;
  t.url = srv.url("/dicom-web");
  canary::Settings c;
  c.uid_root = kRoot;
  auto r = stow(t, c);
  EXPECT_EQ(r.result.reason, Reason::dimse_status) << describe(r);
  EXPECT_EQ(sample_value(r.result, "pacs_dicomweb_stow_failure_reason"), 42752);
  EXPECT_NE(r.result.message.find("0xA700"), std::string::npos) << r.result.message;
}

TEST(DicomWebStowScripted, StoredButNeverFoundIsStoredNotFound) {
  test::LoopbackHttpServer srv([](const test::LoopbackRequest& req) {
    if (req.method != "POST") return test::LoopbackReply::json("[]");  // QIDO-RS: nothing, ever
    return test::LoopbackReply::json(R"({"00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":[")" +
                                     posted_instance_uid(req.body) + R"("]}}]}})");
  });
  Target t;
  t.url = srv.url("/dicom-web");
  canary::Settings c;
  c.uid_root = kRoot;
  auto r = stow(t, c, 3s);
  EXPECT_EQ(r.result.reason, Reason::stored_not_found) << describe(r);
  EXPECT_LT(r.seconds, 3.0 + 0.5);
  EXPECT_FALSE(find_sample(r.result, "pacs_dicomweb_stow_findable_seconds"));
  int finds = 0;
  for (const auto& q : srv.requests()) finds += q.target.rfind("/dicom-web/instances?SOPInstanceUID=", 0) == 0;
  EXPECT_GE(finds, 2) << "polled until the deadline";
  EXPECT_EQ(sample_value(r.result, "pacs_dicomweb_canary_studies"), 0);
}

TEST(DicomWebStowScripted, AnswerNotListingTheCanaryOrNotJsonIsProtocolError) {
  for (std::string body : {std::string(R"({"00081199":{"vr":"SQ","Value":[]}})"), std::string("<html>ok</html>")}) {
    test::LoopbackHttpServer srv([&](const test::LoopbackRequest&) { return test::LoopbackReply::json(body); });
    Target t;
    t.url = srv.url("/dicom-web");
    canary::Settings c;
    c.uid_root = kRoot;
    auto r = stow(t, c);
    EXPECT_EQ(r.result.reason, Reason::protocol_error) << body << ": " << describe(r);
  }
}

TEST(DicomWebStowScripted, ServerThatNeverAnswersIsResponseTimeoutWithinDeadline) {
  test::LoopbackHttpServer silent([](const test::LoopbackRequest&) { return test::LoopbackReply::silent(); });
  Target t;
  t.url = silent.url("/dicom-web");
  canary::Settings c;
  c.uid_root = kRoot;
  auto r = stow(t, c, 1500ms);
  EXPECT_EQ(r.result.reason, Reason::response_timeout) << describe(r);
  EXPECT_LT(r.seconds, 1.5 + 0.5) << describe(r);
}

TEST(DicomWebStowScripted, AllFailedIsHttpStatus409) {
  test::LoopbackHttpServer srv([](const test::LoopbackRequest& req) {
    if (req.method != "POST") return test::LoopbackReply::json("[]");
    return test::LoopbackReply::json("{}", 409);
  });
  Target t;
  t.url = srv.url("/dicom-web");
  canary::Settings c;
  c.uid_root = kRoot;
  auto r = stow(t, c);
  EXPECT_EQ(r.result.reason, Reason::http_status) << describe(r);
  EXPECT_EQ(sample_value(r.result, "pacs_http_status_code"), 409);
}

TEST(DicomWebStowBody, OneDicomPartWithABoundaryNotInTheObject) {
  const std::string part10 = std::string(128, '\0') + "DICM" + "payload";
  auto m = stow_body(part10);
  auto b = m.content_type.substr(m.content_type.find("boundary=") + 9);
  EXPECT_EQ(m.body, "--" + b + "\r\nContent-Type: application/dicom\r\n\r\n" + part10 + "\r\n--" + b + "--\r\n");
  EXPECT_EQ(part10.find(b), std::string::npos);
}

}  // namespace
}  // namespace pacs::dicomweb
