// The canary library without an archive: UID roots and fresh UIDs, the
// object and its Part-10 bytes (read back with DCMTK), the config keys with
// their exact errors, and the dcm4chee cleanup against a loopback server that
// answers like dcm4chee-arc-light's REST API (IocmRS: reject, then delete;
// dcm4chee itself cannot run here).
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include <toml.hpp>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcuid.h"

#include "probes/lib/canary/canary.h"
#include "tests/support/http_test_server.h"
#include "tests/support/support.h"

namespace pacs::canary {
namespace {

using namespace std::chrono_literals;
using test::LoopbackHttpServer;
using test::LoopbackReply;
using test::LoopbackRequest;

class Env : public ::testing::Environment {
 public:
  void SetUp() override {
    http::global_init();
    ASSERT_TRUE(dcmDataDict.isDictionaryLoaded()) << "DICOM dictionary missing (DCMDICTPATH)";
  }
  void TearDown() override { http::global_shutdown(); }
};
[[maybe_unused]] const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new Env);

constexpr const char* kRoot = "1.2.826.0.1.3680043.10.999";

ProbeContext ctx_for(Duration d, Transcript* t = nullptr) {
  ProbeContext c;
  c.deadline = Clock::now() + d;
  c.transcript = t;
  return c;
}

// ---- UIDs ----------------------------------------------------------------

TEST(CanaryUid, RootValidation) {
  for (const char* ok : {"1.2.826.0.1.3680043.10.999", "2.25", "1.2.3", "0.0", "1.3.6.1.4.1.12345.0.7"}) {
    EXPECT_EQ(uid_root_problem(ok), std::nullopt) << ok;
  }
  EXPECT_EQ(uid_root_problem(""), "must not be empty");
  EXPECT_EQ(uid_root_problem("1.2.3."), "must not end with a dot (the agent adds its own components)");
  const std::string syntax =
      "must be a DICOM UID root: numeric components separated by dots, without leading zeros "
      "(e.g. \"1.2.826.0.1.3680043.10.999\")";
  for (const char* bad : {"1.02.3", "1..2", ".1.2", "a.b", "1.2-3", "1.2 .3"}) EXPECT_EQ(uid_root_problem(bad), syntax) << bad;
  EXPECT_EQ(uid_root_problem("3.1"), "must start with 0, 1 or 2 (an ISO/ITU-T arc)");
  EXPECT_EQ(uid_root_problem("12.3"), "must start with 0, 1 or 2 (an ISO/ITU-T arc)");
  const std::string longest = "1." + std::string(kUidRootMax - 2, '1');  // exactly the maximum
  EXPECT_EQ(uid_root_problem(longest), std::nullopt) << longest.size();
  EXPECT_EQ(uid_root_problem(longest + "1"),
            "must be at most 38 characters (the agent appends up to 26 to make each UID; UIDs are at most 64)");
}

TEST(CanaryUid, FreshUidsAreValidUnderTheRootAndNeverRepeat) {
  const std::string longest = "1." + std::string(kUidRootMax - 2, '1');
  std::set<std::string> seen;
  for (const std::string& root : {std::string(kRoot), longest, std::string("2.25")}) {
    for (int i = 0; i < 2000; ++i) {
      Uids u = fresh_uids(root);
      for (const auto* s : {&u.study, &u.series, &u.instance}) {
        EXPECT_TRUE(valid_uid(*s)) << *s;
        EXPECT_LE(s->size(), 64u) << *s;
        EXPECT_EQ(s->rfind(root + ".", 0), 0u) << *s;
        EXPECT_TRUE(seen.insert(*s).second) << "repeated UID " << *s;
      }
    }
  }
  EXPECT_EQ(seen.size(), 3u * 3 * 2000);
}

// ---- the object -------------------------------------------------------------

Settings settings() {
  Settings s;
  s.uid_root = kRoot;
  return s;
}

std::string get(DcmItem& d, const DcmTagKey& tag) {
  OFString v;
  d.findAndGetOFStringArray(tag, v);
  return v.c_str();
}

TEST(CanaryObject, TestPatientMarkedDescriptionsFreshUids) {
  auto a = make_object(settings(), "pacs-agent C-STORE canary");
  auto b = make_object(settings(), "pacs-agent C-STORE canary");
  EXPECT_NE(a.uids().study, b.uids().study);
  EXPECT_NE(a.uids().instance, b.uids().instance);
  DcmDataset& d = a.dataset();
  EXPECT_EQ(get(d, DCM_SOPClassUID), UID_SecondaryCaptureImageStorage);
  EXPECT_EQ(get(d, DCM_SOPInstanceUID), a.uids().instance);
  EXPECT_EQ(get(d, DCM_StudyInstanceUID), a.uids().study);
  EXPECT_EQ(get(d, DCM_SeriesInstanceUID), a.uids().series);
  EXPECT_EQ(get(d, DCM_PatientID), "PACS-AGENT-CANARY");
  EXPECT_EQ(get(d, DCM_PatientName), "ZZ_PACS_AGENT^CANARY");
  EXPECT_EQ(get(d, DCM_StudyDescription), "pacs-agent canary: synthetic test object, safe to delete");
  EXPECT_EQ(get(d, DCM_SeriesDescription), "pacs-agent C-STORE canary");
  EXPECT_EQ(get(d, DCM_Rows), "16");
  EXPECT_EQ(a.pixels().size(), 256u);

  Settings other = settings();
  other.patient_id = "QA-ONLY";
  other.patient_name = "QA^PHANTOM";
  auto c = make_object(other, "x");
  EXPECT_EQ(get(c.dataset(), DCM_PatientID), "QA-ONLY");
  EXPECT_EQ(get(c.dataset(), DCM_PatientName), "QA^PHANTOM");
}

TEST(CanaryObject, Part10ReadsBackWithMetaHeaderAndSameContent) {
  auto o = make_object(settings(), "pacs-agent STOW-RS canary");
  std::string bytes = o.part10();
  ASSERT_GT(bytes.size(), 132u + 256u);
  EXPECT_EQ(bytes.substr(128, 4), "DICM");
  DcmInputBufferStream in;
  in.setBuffer(bytes.data(), static_cast<offile_off_t>(bytes.size()));
  in.setEos();
  DcmFileFormat ff;
  ff.transferInit();
  ASSERT_TRUE(ff.read(in).good());
  ff.transferEnd();
  EXPECT_EQ(get(*ff.getMetaInfo(), DCM_MediaStorageSOPInstanceUID), o.uids().instance);
  EXPECT_EQ(get(*ff.getMetaInfo(), DCM_MediaStorageSOPClassUID), UID_SecondaryCaptureImageStorage);
  EXPECT_EQ(get(*ff.getMetaInfo(), DCM_TransferSyntaxUID), UID_LittleEndianExplicitTransferSyntax);
  EXPECT_TRUE(o.differences(*ff.getDataset()).empty());
}

TEST(CanaryObject, DifferencesNameAttributesNeverValues) {
  auto o = make_object(settings(), "x");
  auto other = make_object(settings(), "x");
  DcmDataset copy(o.dataset());
  EXPECT_TRUE(o.differences(copy).empty());
  // A changed pixel, as an archive with a broken storage would return it.
  std::vector<Uint8> px(o.pixels().begin(), o.pixels().end());
  px[17] ^= 0xff;
  copy.putAndInsertUint8Array(DCM_PixelData, px.data(), static_cast<unsigned long>(px.size()));
  EXPECT_EQ(o.differences(copy), std::vector<std::string>{"PixelData"});
  copy.findAndDeleteElement(DCM_PixelData);
  EXPECT_EQ(o.differences(copy), std::vector<std::string>{"PixelData"});
  auto d = o.differences(other.dataset());
  EXPECT_EQ(d, (std::vector<std::string>{"SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"}));
  for (const auto& name : d) EXPECT_EQ(name.find(kRoot), std::string::npos);
}

// ---- config ---------------------------------------------------------------------

struct Parsed {
  toml::value root;
  std::optional<Settings> settings;
  std::string error;
};

Parsed parse(const std::string& body) {
  Parsed p;
  std::istringstream in("[store]\n" + body);
  p.root = toml::parse(in, "t.toml");
  try {
    ConfigTable t(p.root.as_table().at("store"), "dicom[0].store");
    p.settings = read_settings(t);
    t.check_unknown_keys();
  } catch (const ConfigError& e) {
    p.settings.reset();
    p.error = e.what();
  }
  return p;
}

TEST(CanaryConfig, DefaultsAndEveryCleanupType) {
  auto p = parse("uid_root = \"1.2.3\"\ncleanup = { type = \"none\" }\n");
  ASSERT_TRUE(p.settings) << p.error;
  EXPECT_EQ(p.settings->uid_root, "1.2.3");
  EXPECT_EQ(p.settings->patient_id, "PACS-AGENT-CANARY");
  EXPECT_EQ(p.settings->patient_name, "ZZ_PACS_AGENT^CANARY");
  EXPECT_EQ(p.settings->cleanup.type, Cleanup::Type::none);

  p = parse("uid_root = \"1.2.3\"\npatient_id = \"QA1\"\npatient_name = \"QA^ONE\"\n"
            "cleanup = { type = \"orthanc\", url = \"http://127.0.0.1:8042/\", username = \"agent\", "
            "password_file = \"/etc/pacs-agent/orthanc.pw\" }\n");
  ASSERT_TRUE(p.settings) << p.error;
  EXPECT_EQ(p.settings->patient_id, "QA1");
  EXPECT_EQ(p.settings->cleanup.type, Cleanup::Type::orthanc);
  EXPECT_EQ(p.settings->cleanup.url, "http://127.0.0.1:8042");
  EXPECT_EQ(p.settings->cleanup.http.auth.type, http::Auth::Type::basic);
  EXPECT_EQ(p.settings->cleanup.http.auth.username, "agent");

  p = parse("uid_root = \"1.2.3\"\n[store.cleanup]\ntype = \"dcm4chee\"\n"
            "url = \"https://pacs:8443/dcm4chee-arc/aets/DCM4CHEE/rs\"\n"
            "auth = { type = \"bearer\", token_file = \"/run/token\" }\n");
  ASSERT_TRUE(p.settings) << p.error;
  EXPECT_EQ(p.settings->cleanup.type, Cleanup::Type::dcm4chee);
  EXPECT_EQ(p.settings->cleanup.reject_code, "113039^DCM");
  EXPECT_EQ(p.settings->cleanup.http.auth.type, http::Auth::Type::bearer);
}

TEST(CanaryConfig, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(parse("cleanup = { type = \"none\" }\n").error,
            "t.toml:1: dicom[0].store: missing required key \"uid_root\": the site's DICOM UID root under which the "
            "agent generates the canary's UIDs (e.g. \"1.2.826.0.1.3680043.10.999\")");
  EXPECT_EQ(parse("uid_root = \"1.2.03\"\ncleanup = { type = \"none\" }\n").error,
            "t.toml:2: dicom[0].store.uid_root: must be a DICOM UID root: numeric components separated by dots, "
            "without leading zeros (e.g. \"1.2.826.0.1.3680043.10.999\")");
  EXPECT_EQ(parse("uid_root = \"1.2.3\"\n").error,
            "t.toml:1: dicom[0].store: cleanup is required: cleanup = { type = \"orthanc\" | \"dcm4chee\" | \"none\", "
            "... } (what deletes the canary studies again)");
  EXPECT_EQ(parse("uid_root = \"1.2.3\"\ncleanup = { type = \"rm\" }\n").error,
            "t.toml:3: dicom[0].store.cleanup.type: must be \"orthanc\", \"dcm4chee\" or \"none\"");
  EXPECT_EQ(parse("uid_root = \"1.2.3\"\ncleanup = { type = \"none\", url = \"http://x\" }\n").error,
            "t.toml:3: dicom[0].store.cleanup.url: unknown key");
  EXPECT_EQ(parse("uid_root = \"1.2.3\"\ncleanup = { type = \"orthanc\" }\n").error,
            "t.toml:3: dicom[0].store.cleanup: missing required key \"url\"");
  EXPECT_EQ(parse("uid_root = \"1.2.3\"\ncleanup = { type = \"orthanc\", url = \"http://u:p@h:8042\" }\n").error,
            "t.toml:3: dicom[0].store.cleanup.url: must not contain credentials; use username with password_file or "
            "password_env");
  EXPECT_EQ(parse("uid_root = \"1.2.3\"\ncleanup = { type = \"dcm4chee\", url = \"http://h:8080/dcm4chee-arc\" }\n").error,
            "t.toml:3: dicom[0].store.cleanup.url: must be the archive AE's REST base ending in /rs, e.g. "
            "\"http://pacs:8080/dcm4chee-arc/aets/DCM4CHEE/rs\"");
  EXPECT_EQ(parse("uid_root = \"1.2.3\"\ncleanup = { type = \"dcm4chee\", url = \"http://h/aets/A/rs\", "
                  "reject_code = \"113039\" }\n")
                .error,
            "t.toml:3: dicom[0].store.cleanup.reject_code: must be CodeValue^CodingSchemeDesignator, e.g. \"113039^DCM\"");
  EXPECT_EQ(parse("uid_root = \"1.2.3\"\npatient_id = \"A\\\\B\"\ncleanup = { type = \"none\" }\n").error,
            "t.toml:3: dicom[0].store.patient_id: must be printable ASCII without backslash");
  EXPECT_EQ(parse("uid_root = \"1.2.3\"\npatient_name = \"\"\ncleanup = { type = \"none\" }\n").error,
            "t.toml:3: dicom[0].store.patient_name: must be 1..64 characters");
}

// ---- cleanup: dcm4chee (loopback server with dcm4chee-arc's documented answers) ----

Cleanup dcm4chee_cleanup(const LoopbackHttpServer& srv) {
  Cleanup c;
  c.type = Cleanup::Type::dcm4chee;
  c.url = srv.url("/dcm4chee-arc/aets/DCM4CHEE/rs");
  return c;
}

// A dcm4chee-arc that knows exactly one study (`uid`): reject answers
// {"count":1} once, then 404 (nothing left to reject); DELETE answers 204 for
// a rejected study, 403 for one that was not rejected, 404 after deletion.
struct FakeDcm4chee {
  std::string uid;
  bool rejected = false, deleted = false;
  int reject_status_override = 0;
  LoopbackReply handle(const LoopbackRequest& r) {
    const std::string base = "/dcm4chee-arc/aets/DCM4CHEE/rs/studies/";
    if (r.method == "POST" && r.target == base + uid + "/reject/113039%5EDCM") {
      if (reject_status_override) return LoopbackReply::json("{\"errorMessage\":\"x\"}", reject_status_override);
      if (deleted || rejected) {
        return LoopbackReply::json("{\"errorMessage\":\"No instances of Study[UID=" + uid + "] found for rejection.\"}", 404);
      }
      rejected = true;
      return LoopbackReply::json("{\"count\":1}");
    }
    if (r.method == "DELETE" && r.target == base + uid) {
      if (deleted) return LoopbackReply::json("{\"errorMessage\":\"Study with study instance UID " + uid + " not found.\"}", 404);
      if (!rejected) return LoopbackReply::json("{\"errorMessage\":\"Study is not empty. - " + uid + "\"}", 403);
      deleted = true;
      return {204, "", "application/json", false};
    }
    return LoopbackReply::json("{\"errorMessage\":\"unexpected request\"}", 400);
  }
};

TEST(CanaryCleanupDcm4chee, RejectsThenDeletesExactlyThatStudy) {
  FakeDcm4chee fake{fresh_uids(kRoot).study};
  LoopbackHttpServer srv([&](const LoopbackRequest& r) { return fake.handle(r); });
  Transcript t;
  auto o = cleanup_study(dcm4chee_cleanup(srv), fake.uid, ctx_for(5s, &t));
  EXPECT_EQ(o.status, CleanupOutcome::Status::deleted) << o.message;
  EXPECT_EQ(o.message, "rejected and deleted from dcm4chee");
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, "/dcm4chee-arc/aets/DCM4CHEE/rs/studies/" + fake.uid + "/reject/113039%5EDCM");
  EXPECT_EQ(reqs[1].method, "DELETE");
  EXPECT_EQ(reqs[1].target, "/dcm4chee-arc/aets/DCM4CHEE/rs/studies/" + fake.uid);
  EXPECT_TRUE(fake.deleted);
  // The transcript shows the steps, with the UID replaced.
  std::string text = t.text();
  EXPECT_NE(text.find("cleanup  POST /studies/{study}/reject/113039^DCM -> HTTP 200"), std::string::npos) << text;
  EXPECT_NE(text.find("cleanup  DELETE /studies/{study} -> HTTP 204"), std::string::npos) << text;
  EXPECT_EQ(text.find(fake.uid), std::string::npos) << text;

  // Again: dcm4chee no longer knows it.
  auto again = cleanup_study(dcm4chee_cleanup(srv), fake.uid, ctx_for(5s));
  EXPECT_EQ(again.status, CleanupOutcome::Status::not_found) << again.message;
  EXPECT_EQ(again.message, "dcm4chee does not know the canary study");
}

TEST(CanaryCleanupDcm4chee, AlreadyRejectedStudyIsStillDeleted) {
  FakeDcm4chee fake{fresh_uids(kRoot).study};
  fake.rejected = true;  // an earlier cleanup rejected it, then its DELETE failed
  LoopbackHttpServer srv([&](const LoopbackRequest& r) { return fake.handle(r); });
  auto o = cleanup_study(dcm4chee_cleanup(srv), fake.uid, ctx_for(5s));
  EXPECT_EQ(o.status, CleanupOutcome::Status::deleted) << o.message;
  EXPECT_TRUE(fake.deleted);
}

TEST(CanaryCleanupDcm4chee, FailuresCarryTheReasonAndNeverTheUid) {
  FakeDcm4chee fake{fresh_uids(kRoot).study};
  fake.reject_status_override = 401;  // wrong token
  LoopbackHttpServer srv([&](const LoopbackRequest& r) { return fake.handle(r); });
  auto o = cleanup_study(dcm4chee_cleanup(srv), fake.uid, ctx_for(5s));
  EXPECT_EQ(o.status, CleanupOutcome::Status::failed);
  EXPECT_EQ(o.reason, Reason::http_status);
  EXPECT_EQ(o.message, "dcm4chee reject failed: HTTP 401");
  EXPECT_EQ(srv.requests().size(), 1u) << "no DELETE after a failed reject";
  EXPECT_FALSE(fake.deleted);

  // A DELETE refused because the study is not rejected (403).
  FakeDcm4chee stubborn{fresh_uids(kRoot).study};
  LoopbackHttpServer srv2([&](const LoopbackRequest& r) {
    if (r.method == "POST") return LoopbackReply::json("{\"count\":0}");  // claims success, rejects nothing
    return stubborn.handle(r);
  });
  auto f = cleanup_study(dcm4chee_cleanup(srv2), stubborn.uid, ctx_for(5s));
  EXPECT_EQ(f.status, CleanupOutcome::Status::failed);
  EXPECT_EQ(f.reason, Reason::http_status);
  EXPECT_EQ(f.message, "dcm4chee DELETE study failed: HTTP 403 (the study still has instances that are not rejected)");
  EXPECT_EQ(f.message.find(stubborn.uid), std::string::npos);

  // A server that never answers: the cleanup returns by the deadline.
  LoopbackHttpServer silent([](const LoopbackRequest&) { return LoopbackReply::silent(); });
  auto t0 = Clock::now();
  auto s = cleanup_study(dcm4chee_cleanup(silent), fake.uid, ctx_for(700ms));
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 0.7 + 0.5);
  EXPECT_EQ(s.status, CleanupOutcome::Status::failed);
  EXPECT_EQ(s.reason, Reason::response_timeout);
  EXPECT_EQ(s.message, "dcm4chee reject failed: response_timeout");
}

TEST(CanaryCleanupDcm4chee, BasicAuthFromPasswordFile) {
  test::TempDir tmp;
  auto pw = tmp.write("pw", "s3cret\n");
  FakeDcm4chee fake{fresh_uids(kRoot).study};
  LoopbackHttpServer srv([&](const LoopbackRequest& r) {
    // "agent:s3cret" in base64
    if (r.headers.count("authorization") == 0 || r.headers.at("authorization") != "Basic YWdlbnQ6czNjcmV0") {
      return LoopbackReply::json("{}", 401);
    }
    return fake.handle(r);
  });
  Cleanup c = dcm4chee_cleanup(srv);
  c.http.auth.type = http::Auth::Type::basic;
  c.http.auth.username = "agent";
  c.http.auth.password_file = pw.string();
  auto o = cleanup_study(c, fake.uid, ctx_for(5s));
  EXPECT_EQ(o.status, CleanupOutcome::Status::deleted) << o.message;
}

TEST(CanaryCleanup, NoneTouchesNothing) {
  Cleanup c;
  auto o = cleanup_study(c, fresh_uids(kRoot).study, ctx_for(1s));
  EXPECT_EQ(o.status, CleanupOutcome::Status::disabled);
  EXPECT_EQ(to_string(o.status), "disabled");
}

}  // namespace
}  // namespace pacs::canary
