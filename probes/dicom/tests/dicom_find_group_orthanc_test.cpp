// `group_by` against a real Orthanc (Debian package) on 127.0.0.1: studies of
// three modalities stored today give exact counts per modality and the right
// newest age; a multi-modality study counts once per modality; a value
// outside the modality codes lands in "other", no value in "none"; a group
// keeps its series at 0 once its studies are gone; SERIES level counts
// series per Modality; patient data asked back as return keys never becomes
// a label, a message or a log line.
#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <mutex>
#include <thread>

#include "probes/dicom/dicom_probe.h"
#include "probes/log.h"
#include "tests/support/probe_testing.h"
#include "tests/support/support.h"

namespace pacs::dicom {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::mutex g_lines_mu;
std::vector<std::string> g_lines;

Logger& test_logger() {
  static Logger log(LogLevel::debug, [](std::string_view line) {
    std::lock_guard lk(g_lines_mu);
    g_lines.emplace_back(line);
  });
  return log;
}

class DicomEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { global_init(test_logger()); }
  void TearDown() override { global_shutdown(); }
};
[[maybe_unused]] const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new DicomEnvironment);

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Today's local midnight and "HHMMSS" for a moment `ago` seconds before now,
// but not before midnight (a study of today).
struct Today {
  std::string date;
  double midnight = 0;
  std::string time_ago(int ago, double* unix_time) const {
    double t = std::max(midnight, std::floor(unix_now()) - ago);
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    localtime_r(&tt, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%H%M%S", &tm);
    if (unix_time) *unix_time = t;
    return buf;
  }
};

// Avoids the minute around midnight, when "today" would change between
// storing the studies and querying them.
Today today_not_at_midnight() {
  for (;;) {
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    if (tm.tm_hour == 23 && tm.tm_min >= 58) {
      std::this_thread::sleep_for(5s);
      continue;
    }
    Today t;
    t.date = today_dicom_date();
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    t.midnight = static_cast<double>(std::mktime(&tm));
    return t;
  }
}

test::Orthanc::Options orthanc_options() {
  test::Orthanc::Options o;
  o.aet = "ORTHANC";
  o.modalities["probe"] = {"PROBE", "127.0.0.1", 104};
  return o;
}

DicomOptions find_target(const test::Orthanc& orthanc, FindOptions find) {
  DicomOptions o;
  o.host = "127.0.0.1";
  o.port = orthanc.dicom_port();
  o.called_ae_title = orthanc.aet();
  o.calling_ae_title = "PROBE";
  o.checks = {Check::find};
  o.find = std::move(find);
  return o;
}

ProbeResult run(DicomProbe& p) {
  ProbeContext ctx = test::ctx_for(10s);
  ctx.log = &test_logger();
  return p.run(ctx);
}

std::string describe(const ProbeResult& r) {
  std::string s = "success=" + std::to_string(r.success) + " reason=" + std::string(to_string(r.reason)) +
                  " message=\"" + r.message + "\" samples:";
  for (const auto& x : r.samples) {
    s += " " + x.name;
    for (const auto& [k, v] : x.labels) s += "{" + k + "=" + v + "}";
    s += "=" + std::to_string(x.value);
  }
  return s;
}

// group -> value of `metric` in `r`.
std::map<std::string, double> by_group(const ProbeResult& r, const std::string& metric) {
  std::map<std::string, double> out;
  for (const auto& s : r.samples) {
    if (s.name != metric) continue;
    EXPECT_EQ(s.labels.size(), 1u);
    if (s.labels.size() == 1 && s.labels[0].first == "group") out[s.labels[0].second] = s.value;
  }
  return out;
}

struct Stored {
  test::Orthanc orthanc{orthanc_options()};
  test::TempDir tmp;
  Today today = today_not_at_midnight();
  int n = 0;
  // One instance of a (new or given) study; returns the study's UID.
  std::string store(const std::string& modality, const std::string& date, const std::string& time,
                    std::string study_uid = {}, const std::string& patient = "GROUP^TEST",
                    const std::string& patient_id = "G1") {
    test::DicomFileSpec spec;
    spec.patient_name = patient;
    spec.patient_id = patient_id;
    spec.study_date = date;
    spec.study_time = time;
    spec.modality = modality;
    if (study_uid.empty()) study_uid = "1.2.826.0.1.3680043.2.1143.77." + std::to_string(++n);
    spec.study_uid = study_uid;
    auto f = test::make_dicom_file(tmp / ("i" + std::to_string(++n) + ".dcm"), spec);
    EXPECT_EQ(orthanc.upload(f), 200) << orthanc.log();
    return study_uid;
  }
};

TEST(DicomFindGroups, ThreeModalitiesTodayExactCountsAndNewestAge) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  Stored s;
  ASSERT_TRUE(s.orthanc.start()) << s.orthanc.log();
  const auto& d = s.today.date;
  double ct_newest = 0, mr_newest = 0, us_newest = 0, other_newest = 0, none_newest = 0, pt_newest = 0;
  // CT: 3 studies today (the newest 20 minutes ago), 1 yesterday-ish (not today).
  s.store("CT", d, s.today.time_ago(3 * 3600, nullptr));
  s.store("CT", d, s.today.time_ago(1200, &ct_newest));
  s.store("CT", d, s.today.time_ago(2 * 3600, nullptr));
  s.store("CT", "20000101", "120000");
  // MR: 2 studies today, plus one study with an MR and a PT series.
  s.store("MR", d, s.today.time_ago(5 * 3600, nullptr));
  s.store("MR", d, s.today.time_ago(4 * 3600, nullptr));
  // (StudyDate/StudyTime belong to the study: both series carry the same.)
  std::string mrpt_time = s.today.time_ago(600, &mr_newest);
  pt_newest = mr_newest;
  auto mrpt = s.store("MR", d, mrpt_time);
  s.store("PT", d, mrpt_time, mrpt);
  // US: 1 study today.
  s.store("US", d, s.today.time_ago(7200 + 60, &us_newest));
  // Not modality codes: "ZZ" and a lower-case "ct" -> other; no Modality -> none.
  s.store("ZZ", d, s.today.time_ago(900, &other_newest));
  s.store("ct", d, s.today.time_ago(1800, nullptr));
  s.store("", d, s.today.time_ago(300, &none_newest));

  FindOptions f;
  f.keys = {{"StudyDate", "today"}};
  f.group_by = FindOptions::GroupBy::modalities_in_study;
  DicomProbe probe(find_target(s.orthanc, f), Check::find);
  double before = unix_now();
  auto r = run(probe);
  double after = unix_now();
  ASSERT_TRUE(r.success) << describe(r);
  EXPECT_EQ(by_group(r, "pacs_dicom_find_matches"),
            (std::map<std::string, double>{{"CT", 3}, {"MR", 3}, {"PT", 1}, {"US", 1}, {"other", 2}, {"none", 1}}))
      << describe(r);
  // 10 studies matched today; the MR+PT study counts in both groups.
  EXPECT_EQ(r.message.rfind("C-FIND 10 matches in ", 0), 0u) << r.message;
  for (const auto& smp : r.samples) {  // never an unlabelled total beside the groups
    if (smp.name == "pacs_dicom_find_matches") {
      EXPECT_EQ(smp.labels.size(), 1u);
    }
  }

  auto age = by_group(r, "pacs_dicom_find_newest_age_seconds");
  auto expect_age = [&](const std::string& g, double newest) {
    ASSERT_TRUE(age.count(g)) << g << ": " << describe(r);
    EXPECT_GE(age[g], std::max(0.0, before - newest) - 0.001) << g;
    EXPECT_LE(age[g], after - newest + 0.001) << g;
  };
  expect_age("CT", ct_newest);
  expect_age("MR", mr_newest);
  expect_age("PT", pt_newest);
  expect_age("US", us_newest);
  expect_age("other", other_newest);
  expect_age("none", none_newest);
  EXPECT_EQ(age.size(), 6u);

  // The MR studies go away: MR stays exported at 0 (without an age), the
  // PT series' study went with them.
  auto lookup = test::http_request(s.orthanc.http_port(), "POST", "/tools/find", {{"Content-Type", "application/json"}},
                                   R"({"Level":"Study","Query":{"ModalitiesInStudy":"MR"}})");
  ASSERT_EQ(lookup.status, 200) << lookup.body;
  size_t pos = 0;
  int deleted = 0;
  while ((pos = lookup.body.find('"', pos)) != std::string::npos) {
    auto end = lookup.body.find('"', pos + 1);
    std::string id = lookup.body.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    if (id.size() < 20) continue;
    EXPECT_EQ(test::http_request(s.orthanc.http_port(), "DELETE", "/studies/" + id).status, 200);
    ++deleted;
  }
  ASSERT_EQ(deleted, 3);
  auto r2 = run(probe);
  ASSERT_TRUE(r2.success) << describe(r2);
  EXPECT_EQ(by_group(r2, "pacs_dicom_find_matches"),
            (std::map<std::string, double>{{"CT", 3}, {"MR", 0}, {"PT", 0}, {"US", 1}, {"other", 2}, {"none", 1}}))
      << describe(r2);
  auto age2 = by_group(r2, "pacs_dicom_find_newest_age_seconds");
  EXPECT_FALSE(age2.count("MR"));
  EXPECT_FALSE(age2.count("PT"));
  EXPECT_TRUE(age2.count("CT"));

  // A fresh instance (restart or changed settings) forgets the groups it never saw.
  DicomProbe fresh(find_target(s.orthanc, f), Check::find);
  auto r3 = run(fresh);
  ASSERT_TRUE(r3.success) << describe(r3);
  EXPECT_EQ(by_group(r3, "pacs_dicom_find_matches"),
            (std::map<std::string, double>{{"CT", 3}, {"US", 1}, {"other", 2}, {"none", 1}}));

  // Without group_by: one unlabelled count and no age, as before.
  FindOptions plain;
  plain.keys = {{"StudyDate", "today"}};
  DicomProbe ungrouped(find_target(s.orthanc, plain), Check::find);
  auto r4 = run(ungrouped);
  ASSERT_TRUE(r4.success) << describe(r4);
  EXPECT_EQ(test::sample_value(r4, "pacs_dicom_find_matches"), 7);
  EXPECT_TRUE(test::find_sample(r4, "pacs_dicom_find_matches")->labels.empty());
  EXPECT_EQ(test::find_sample(r4, "pacs_dicom_find_newest_age_seconds"), nullptr);
}

TEST(DicomFindGroups, SeriesLevelCountsSeriesPerModality) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  Stored s;
  ASSERT_TRUE(s.orthanc.start()) << s.orthanc.log();
  const auto& d = s.today.date;
  double pt_time = 0;
  std::string study_time = s.today.time_ago(3600, &pt_time);
  auto study = s.store("MR", d, study_time);
  s.store("PT", d, study_time, study);  // same study, its own series
  s.store("CT", d, s.today.time_ago(7200, nullptr));
  s.store("CT", d, s.today.time_ago(60, nullptr));
  s.store("XX", d, s.today.time_ago(60, nullptr));

  FindOptions f;
  f.level = FindOptions::Level::series;
  f.keys = {{"StudyDate", "today"}};
  f.group_by = FindOptions::GroupBy::modality;
  DicomProbe probe(find_target(s.orthanc, f), Check::find);
  double before = unix_now();
  auto r = run(probe);
  double after = unix_now();
  ASSERT_TRUE(r.success) << describe(r);
  EXPECT_EQ(by_group(r, "pacs_dicom_find_matches"),
            (std::map<std::string, double>{{"CT", 2}, {"MR", 1}, {"PT", 1}, {"other", 1}}))
      << describe(r);
  auto age = by_group(r, "pacs_dicom_find_newest_age_seconds");
  ASSERT_TRUE(age.count("PT"));
  EXPECT_GE(age["PT"], before - pt_time - 0.001);
  EXPECT_LE(age["PT"], after - pt_time + 0.001);
}

TEST(DicomFindGroups, PatientDataAskedBackNeverBecomesALabel) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  PACS_REQUIRE_PEER("findscu");
  Stored s;
  ASSERT_TRUE(s.orthanc.start()) << s.orthanc.log();
  // The patient's ID is a valid modality code ("MR") and the name is a
  // canary: only the study's real modality (CT) may become a group.
  s.store("CT", s.today.date, s.today.time_ago(60, nullptr), {}, "PHI^GROUPCANARY", "MR");

  // A config that asks for patient data back as return keys.
  FindOptions f;
  f.keys = {{"StudyDate", "today"}, {"PatientName", ""}, {"PatientID", ""}, {"AccessionNumber", ""}};
  f.group_by = FindOptions::GroupBy::modalities_in_study;

  // Control: with these keys Orthanc really sends the patient data back.
  std::string out;
  ASSERT_EQ(test::run_command({"findscu", "-S", "-aet", "PROBE", "-aec", "ORTHANC", "127.0.0.1",
                               std::to_string(s.orthanc.dicom_port()), "-k", "QueryRetrieveLevel=STUDY", "-k",
                               "StudyDate=" + s.today.date, "-k", "PatientName", "-k", "PatientID", "-k",
                               "AccessionNumber", "-k", "ModalitiesInStudy", "-k", "StudyInstanceUID"},
                              &out),
            0)
      << out;
  ASSERT_NE(out.find("PHI^GROUPCANARY"), std::string::npos) << "control failed: " << out;

  size_t lines_before;
  {
    std::lock_guard lk(g_lines_mu);
    lines_before = g_lines.size();
  }
  DicomProbe probe(find_target(s.orthanc, f), Check::find);
  auto r = run(probe);
  ASSERT_TRUE(r.success) << describe(r);
  EXPECT_EQ(by_group(r, "pacs_dicom_find_matches"), (std::map<std::string, double>{{"CT", 1}})) << describe(r);
  std::lock_guard lk(g_lines_mu);
  for (const char* canary : {"GROUPCANARY", "ACCMR"}) {
    EXPECT_EQ(r.message.find(canary), std::string::npos);
    for (const auto& smp : r.samples)
      for (const auto& [k, v] : smp.labels) EXPECT_EQ(v.find(canary), std::string::npos);
    for (size_t i = lines_before; i < g_lines.size(); ++i)
      EXPECT_EQ(g_lines[i].find(canary), std::string::npos) << g_lines[i];
  }
}

}  // namespace
}  // namespace pacs::dicom
