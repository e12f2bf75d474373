// The dicomweb probes against real peers on 127.0.0.1: Orthanc with its
// DICOMweb plugin (Debian orthanc-dicomweb) and HTTP basic auth on; scripted
// loopback HTTP servers for silence and garbage; an HTTPS server for the
// certificate expiry; and the built agent answering /probe.
#include <chrono>
#include <ctime>
#include <fstream>
#include <thread>

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

class KindEnv : public ::testing::Environment {
 public:
  void SetUp() override { kind().init(log_); }
  void TearDown() override { kind().shutdown(); }

 private:
  Logger log_{LogLevel::error};
};
const auto* const kKindEnv = ::testing::AddGlobalTestEnvironment(new KindEnv);

std::string date(int days_ago) {
  std::time_t t = std::time(nullptr) - days_ago * 86400;
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  return buf;
}

struct RunResult {
  ProbeResult result;
  double seconds = 0;
  std::string transcript;
};

RunResult run(Probe&& p, Duration timeout = 10s) {
  Transcript t;
  auto ctx = ctx_for(timeout);
  ctx.transcript = &t;
  auto start = Clock::now();
  RunResult r;
  r.result = p.run(ctx);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.transcript = t.text();
  return r;
}

std::string describe(const RunResult& r) {
  return std::string(to_string(r.result.reason)) + ": " + r.result.message + "\n" + r.transcript;
}

// Everything a run shows to anyone: message, transcript, samples.
std::string shown(const RunResult& r) {
  std::string s = r.result.message + "\n" + r.transcript;
  for (const auto& x : r.result.samples) {
    s += x.name + x.help;
    for (const auto& [k, v] : x.labels) s += k + v;
  }
  return s;
}

// One Orthanc with DICOMweb and basic auth for the suite: 3 studies dated
// today (one of them a PHI canary), 1 dated last week.
class DicomWebOrthanc : public ::testing::Test {
 protected:
  static constexpr const char* kUser = "monitor";
  static constexpr const char* kPassword = "s3cret-pw";
  static constexpr const char* kPhiName = "PHI^DICOMWEB^CANARY";
  static constexpr const char* kPhiId = "PHI-DW-CANARY-ID";

  static void SetUpTestSuite() {
    if (!test::find_program("Orthanc") || test::Orthanc::dicomweb_plugin().empty() || !test::find_program("dump2dcm")) {
      return;
    }
    dir_ = new test::TempDir;
    test::Orthanc::Options o;
    o.plugins = {test::Orthanc::dicomweb_plugin()};
    o.users = {{kUser, kPassword}};
    o.extra_json = {R"("DicomWeb": { "Enable": true, "Root": "/dicom-web/" })"};
    orthanc_ = new test::Orthanc(o);
    if (!orthanc_->start()) return;
    int n = 0;
    auto store = [&](const std::string& name, const std::string& id, const std::string& day) {
      auto f = test::make_dicom_file(*dir_ / ("s" + std::to_string(n++) + ".dcm"), name, id, day);
      return orthanc_->upload(f) == 200;
    };
    ready_ = store(kPhiName, kPhiId, date(0)) && store("TEST^TWO", "ID2", date(0)) && store("TEST^THREE", "ID3", date(0)) &&
             store("TEST^OLD", "ID4", date(7));
    dir_->write("pw", std::string(kPassword) + "\n");
    dir_->write("wrong-pw", "not-the-password\n");
  }
  static void TearDownTestSuite() {
    delete orthanc_;
    delete dir_;
    orthanc_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override {
    PACS_REQUIRE_PEER("Orthanc");
    PACS_REQUIRE_PEER("dump2dcm");
    if (test::Orthanc::dicomweb_plugin().empty()) {
      if (std::getenv("CI")) FAIL() << "orthanc-dicomweb is not installed";
      GTEST_SKIP() << "orthanc-dicomweb is not installed";
    }
    ASSERT_TRUE(ready_) << orthanc_->log();
  }
  static Target target(const std::string& password_file = "pw") {
    Target t;
    t.url = orthanc_->url() + "/dicom-web";
    t.http.auth.type = http::Auth::Type::basic;
    t.http.auth.username = kUser;
    t.http.auth.password_file = (*dir_ / password_file).string();
    return t;
  }
  // Study UIDs as Orthanc's own REST API lists them (the test's side).
  static std::vector<std::string> study_uids() {
    std::vector<std::string> out;
    auto ids = nlohmann::json::parse(orthanc_->rest("GET", "/studies").body);
    for (const auto& id : ids) {
      auto s = nlohmann::json::parse(orthanc_->rest("GET", "/studies/" + id.get<std::string>()).body);
      out.push_back(s["MainDicomTags"]["StudyInstanceUID"].get<std::string>());
    }
    return out;
  }
  static inline test::TempDir* dir_ = nullptr;
  static inline test::Orthanc* orthanc_ = nullptr;
  static inline bool ready_ = false;
};

TEST_F(DicomWebOrthanc, QidoCountsExactlyTheStudiesStoredToday) {
  auto r = run(QidoProbe(target(), {{"StudyDate", "today"}}));
  ASSERT_TRUE(r.result.success) << describe(r);
  EXPECT_EQ(sample_value(r.result, "pacs_dicomweb_qido_matches"), 3);
  EXPECT_EQ(sample_value(r.result, "pacs_http_status_code"), 200);
  EXPECT_GT(sample_value(r.result, "pacs_dicomweb_first_byte_seconds"), 0);
  EXPECT_GE(sample_value(r.result, "pacs_dicomweb_response_seconds"),
            sample_value(r.result, "pacs_dicomweb_first_byte_seconds"));
  EXPECT_FALSE(find_sample(r.result, "pacs_dicomweb_tls_cert_expiry_timestamp_seconds"));  // plain http
  EXPECT_NE(r.transcript.find("QIDO-RS  3 matching studies"), std::string::npos) << r.transcript;
  EXPECT_NE(r.transcript.find("HTTP 200"), std::string::npos) << r.transcript;
  // Control: the date really filters (all 4 without it, 1 last week).
  r = run(QidoProbe(target(), {}));
  EXPECT_EQ(sample_value(r.result, "pacs_dicomweb_qido_matches"), 4) << describe(r);
  r = run(QidoProbe(target(), {{"StudyDate", date(7)}}));
  EXPECT_EQ(sample_value(r.result, "pacs_dicomweb_qido_matches"), 1) << describe(r);
}

TEST_F(DicomWebOrthanc, WrongPasswordIsHttpStatus401) {
  auto r = run(QidoProbe(target("wrong-pw"), {{"StudyDate", "today"}}));
  EXPECT_EQ(r.result.reason, Reason::http_status) << describe(r);
  EXPECT_EQ(sample_value(r.result, "pacs_http_status_code"), 401);
  EXPECT_FALSE(find_sample(r.result, "pacs_dicomweb_qido_matches"));
  EXPECT_EQ(shown(r).find("not-the-password"), std::string::npos);
  // And without credentials at all.
  auto anon = target();
  anon.http.auth = {};
  r = run(QidoProbe(anon, {}));
  EXPECT_EQ(r.result.reason, Reason::http_status) << describe(r);
  EXPECT_EQ(sample_value(r.result, "pacs_http_status_code"), 401);
}

TEST_F(DicomWebOrthanc, WadoRetrievesTheMetadataOfAStudyQidoFound) {
  auto r = run(WadoProbe(target(), {}));
  ASSERT_TRUE(r.result.success) << describe(r);
  EXPECT_EQ(sample_value(r.result, "pacs_dicomweb_wado_instances"), 1);
  EXPECT_GT(sample_value(r.result, "pacs_dicomweb_wado_bytes"), 200);
  EXPECT_GT(sample_value(r.result, "pacs_dicomweb_first_byte_seconds"), 0);
  EXPECT_NE(r.transcript.find("GET  " + orthanc_->url() + "/dicom-web/studies/{study}/metadata"), std::string::npos)
      << r.transcript;
  EXPECT_NE(r.transcript.find("WADO-RS  1 instances in the metadata"), std::string::npos) << r.transcript;
}

TEST_F(DicomWebOrthanc, WadoOfAConfiguredStudyAndOfAMissingOne) {
  auto uids = study_uids();
  ASSERT_EQ(uids.size(), 4u);
  WadoOptions o;
  o.study_uid = uids[1];
  auto r = run(WadoProbe(target(), o));
  ASSERT_TRUE(r.result.success) << describe(r);
  EXPECT_EQ(sample_value(r.result, "pacs_dicomweb_wado_instances"), 1);
  o.study_uid = "1.2.826.0.1.3680043.10.999.404";
  r = run(WadoProbe(target(), o));
  EXPECT_EQ(r.result.reason, Reason::http_status) << describe(r);
  EXPECT_EQ(sample_value(r.result, "pacs_http_status_code"), 404);
}

TEST_F(DicomWebOrthanc, WadoWithNothingToRetrieveIsNoMatch) {
  WadoOptions o;
  o.keys = {{"StudyDate", "19000101"}};
  auto r = run(WadoProbe(target(), o));
  EXPECT_EQ(r.result.reason, Reason::no_match) << describe(r);
}

// No name, ID or study UID the server returned appears in anything a run
// shows; the control proves the server did return them to the probe's query.
TEST_F(DicomWebOrthanc, NothingFromTheServerIsShown) {
  auto uids = study_uids();
  auto qido = orthanc_->rest("GET", "/dicom-web/studies?StudyDate=" + date(0));
  ASSERT_NE(qido.body.find(kPhiName), std::string::npos) << "control: QIDO-RS returns the canary's name";
  ASSERT_NE(qido.body.find(kPhiId), std::string::npos) << "control: and its ID";
  int uids_in_answer = 0;
  for (const auto& uid : uids) uids_in_answer += qido.body.find(uid) != std::string::npos;
  ASSERT_EQ(uids_in_answer, 3) << "control: QIDO-RS returns today's study UIDs";
  std::vector<RunResult> runs = {run(QidoProbe(target(), {{"StudyDate", "today"}})), run(WadoProbe(target(), {})),
                           run(WadoProbe(target(), WadoOptions{.study_uid = "", .keys = {{"PatientID", kPhiId}}}))};
  ASSERT_TRUE(runs[2].result.success) << describe(runs[2]);  // control: it retrieved the canary study
  for (const auto& r : runs) {
    const auto s = shown(r);
    EXPECT_EQ(s.find("PHI"), std::string::npos) << s;
    EXPECT_EQ(s.find(kPhiId), std::string::npos) << s;
    for (const auto& uid : uids) EXPECT_EQ(s.find(uid), std::string::npos) << uid << " in " << s;
  }
  // A failing retrieve (the study vanished) names no UID either.
  auto gone = test::LoopbackHttpServer([&](const test::LoopbackRequest& req) {
    if (req.target.find("/metadata") != std::string::npos) return test::LoopbackReply::json("{}", 500);
    return test::LoopbackReply::json(R"([{"0020000D":{"vr":"UI","Value":["1.2.3.4.55555"]}}])");
  });
  Target t;
  t.url = gone.url("/dicom-web");
  auto r = run(WadoProbe(t, {}));
  EXPECT_EQ(r.result.reason, Reason::http_status) << describe(r);
  EXPECT_EQ(shown(r).find("55555"), std::string::npos) << shown(r);
  ASSERT_EQ(gone.requests().size(), 2u);
  EXPECT_NE(gone.requests()[1].target.find("1.2.3.4.55555"), std::string::npos) << "control: the UID was used";
}

// ---- peers that misbehave -------------------------------------------------

TEST(DicomWeb, ServerThatNeverAnswersIsResponseTimeoutWithinDeadline) {
  test::LoopbackHttpServer silent([](const test::LoopbackRequest&) { return test::LoopbackReply::silent(); });
  Target t;
  t.url = silent.url("/dicom-web");
  for (int check = 0; check < 2; ++check) {
    auto r = check == 0 ? run(QidoProbe(t, {}), 1500ms) : run(WadoProbe(t, {}), 1500ms);
    EXPECT_EQ(r.result.reason, Reason::response_timeout) << describe(r);
    EXPECT_LT(r.seconds, 1.5 + 0.5) << describe(r);
    EXPECT_GT(r.seconds, 1.4) << describe(r);
  }
}

TEST(DicomWeb, GarbageIsProtocolError) {
  struct Case {
    const char* what;
    test::LoopbackReply reply;
  } cases[] = {
      {"html", {200, "<html><body>Login</body></html>", "text/html", false}},
      {"json object", test::LoopbackReply::json(R"({"studies": 3})")},
      {"array of numbers", test::LoopbackReply::json("[1,2,3]")},
      {"truncated json", test::LoopbackReply::json(R"([{"0020000D":)")},
  };
  for (const auto& c : cases) {
    test::LoopbackHttpServer srv([&](const test::LoopbackRequest&) { return c.reply; });
    Target t;
    t.url = srv.url("/dicom-web");
    auto r = run(QidoProbe(t, {}));
    EXPECT_EQ(r.result.reason, Reason::protocol_error) << c.what << ": " << describe(r);
    EXPECT_EQ(sample_value(r.result, "pacs_http_status_code"), 200) << c.what;
    r = run(WadoProbe(t, {}));
    EXPECT_EQ(r.result.reason, Reason::protocol_error) << c.what << ": " << describe(r);
  }
  // Metadata that is not a list of datasets.
  test::LoopbackHttpServer meta([](const test::LoopbackRequest& req) {
    if (req.target.find("/metadata") != std::string::npos) return test::LoopbackReply::json("not json");
    return test::LoopbackReply::json(R"([{"0020000D":{"vr":"UI","Value":["1.2.3"]}}])");
  });
  Target t;
  t.url = meta.url("/dicom-web");
  auto r = run(WadoProbe(t, {}));
  EXPECT_EQ(r.result.reason, Reason::protocol_error) << describe(r);
}

TEST(DicomWeb, NothingListeningIsConnectionRefused) {
  Target t;
  t.url = "http://127.0.0.1:" + std::to_string(test::free_port()) + "/dicom-web";
  auto r = run(QidoProbe(t, {}));
  EXPECT_EQ(r.result.reason, Reason::connection_refused) << describe(r);
}

// HTTPS: the server certificate's notAfter is exported (openssl s_server,
// a 20-day self-signed certificate; its status page is not QIDO-RS JSON).
TEST(DicomWeb, HttpsCertificateExpiryIsExported) {
  PACS_REQUIRE_PEER("openssl");
  test::TempDir d;
  std::string out;
  ASSERT_EQ(test::run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "20", "-subj",
                               "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                               (d / "key.pem").string(), "-out", (d / "cert.pem").string()},
                              &out),
            0)
      << out;
  int port = test::free_port();
  test::Process server({"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                        (d / "cert.pem").string(), "-key", (d / "key.pem").string(), "-www", "-quiet"},
                       d / "s_server.log");
  ASSERT_TRUE(test::wait_for_port(port)) << server.log();
  Target t;
  t.url = "https://127.0.0.1:" + std::to_string(port) + "/dicom-web";
  auto r = run(QidoProbe(t, {}));
  EXPECT_EQ(r.result.reason, Reason::tls_failure) << describe(r);
  t.http.tls.ca_file = (d / "cert.pem").string();
  r = run(QidoProbe(t, {}));
  EXPECT_EQ(r.result.reason, Reason::protocol_error) << describe(r);
  double days = (sample_value(r.result, "pacs_dicomweb_tls_cert_expiry_timestamp_seconds") - std::time(nullptr)) / 86400.0;
  EXPECT_GT(days, 19);
  EXPECT_LT(days, 21);
}

}  // namespace
}  // namespace pacs::dicomweb
