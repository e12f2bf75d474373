// `group_by` in [dicom.find] without a peer: the bounded modality set and
// its "other"/"none" buckets, StudyDate/StudyTime arithmetic in local time,
// the tally (a study of several modalities counts once per modality), the
// sticky zero series, and the config rules (group_by needs its level).
#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>

#include "agent/config.h"
#include "probes/dicom/dicom_probe.h"
#include "probes/dicom/find_groups.h"
#include "tests/support/probe_testing.h"

namespace pacs::dicom {
namespace {

TEST(FindGroups, ModalityCodesAreTheirOwnGroupEverythingElseIsOther) {
  for (const char* code : {"CT", "MR", "PT", "US", "CR", "DX", "MG", "NM", "XA", "SR", "KO", "PR", "OT", "SEG",
                           "RTSTRUCT", "CS" /* retired: still a code */}) {
    EXPECT_EQ(modality_group(code), code);
  }
  EXPECT_EQ(modality_group("CT "), "CT");  // CS padding
  EXPECT_EQ(modality_group(" MR"), "MR");
  EXPECT_EQ(modality_group(""), "none");
  EXPECT_EQ(modality_group("  "), "none");
  // Not codes: lower case, made up, a patient's name, too long, a number.
  for (const char* other : {"ct", "ZZ", "DOE^JOHN", "CTCTCTCTCTCTCTCTCTCT", "12", "C T"}) {
    EXPECT_EQ(modality_group(other), "other") << other;
  }
  EXPECT_GE(modality_codes().size(), 90u);
  for (const auto& c : modality_codes()) {
    EXPECT_LE(c.size(), 16u);  // CS maximum length
    for (char ch : c) EXPECT_TRUE((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) << c;
  }
}

TEST(FindGroups, OneResponseGivesEachOfItsModalitiesOnce) {
  EXPECT_EQ(groups_of({"MR", "PT"}), (std::set<std::string>{"MR", "PT"}));
  EXPECT_EQ(groups_of({"CT", "CT"}), (std::set<std::string>{"CT"}));
  EXPECT_EQ(groups_of({"CT", "XYZ", "QQ"}), (std::set<std::string>{"CT", "other"}));
  EXPECT_EQ(groups_of({}), (std::set<std::string>{"none"}));
  EXPECT_EQ(groups_of({""}), (std::set<std::string>{"none"}));
  EXPECT_EQ(groups_of({"CT", ""}), (std::set<std::string>{"CT"}));
}

// Local time, as the agent reads StudyDate/StudyTime.
double local(int y, int mon, int d, int h, int m, int s) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = s;
  tm.tm_isdst = -1;
  return static_cast<double>(std::mktime(&tm));
}

TEST(FindGroups, StudyDateAndTimeAreLocalTime) {
  EXPECT_EQ(study_timestamp("20240131", "235959"), local(2024, 1, 31, 23, 59, 59));
  EXPECT_EQ(study_timestamp("20240131", "0805"), local(2024, 1, 31, 8, 5, 0));
  EXPECT_EQ(study_timestamp("20240131", "08"), local(2024, 1, 31, 8, 0, 0));
  EXPECT_EQ(study_timestamp("20240131", "08:05:07"), local(2024, 1, 31, 8, 5, 7));  // ACR-NEMA
  EXPECT_DOUBLE_EQ(*study_timestamp("20240131", "080507.25"), local(2024, 1, 31, 8, 5, 7) + 0.25);
  EXPECT_EQ(study_timestamp("20240131 ", "101010 "), local(2024, 1, 31, 10, 10, 10));
  // No usable time: the start of the day (never newer than it is).
  EXPECT_EQ(study_timestamp("20240131", ""), local(2024, 1, 31, 0, 0, 0));
  EXPECT_EQ(study_timestamp("20240131", "25"), local(2024, 1, 31, 0, 0, 0));
  EXPECT_EQ(study_timestamp("20240131", "1x"), local(2024, 1, 31, 0, 0, 0));
  // No usable date: unknown.
  EXPECT_FALSE(study_timestamp("", "101010"));
  EXPECT_FALSE(study_timestamp("2024013", "101010"));
  EXPECT_FALSE(study_timestamp("20241301", "101010"));
  EXPECT_FALSE(study_timestamp("2024-01-31", "101010"));
}

TEST(FindGroups, TallyCountsPerModalityAndKeepsTheNewestStudy) {
  FindTally t;
  t.add({"CT"}, "20240131", "080000");
  t.add({"CT"}, "20240131", "093000");
  t.add({"MR", "PT"}, "20240131", "090000");
  t.add({"ZZ"}, "20240131", "100000");
  t.add({}, "20240131", "110000");
  t.add({"CT"}, "", "");  // counted, no date for the newest
  EXPECT_EQ(t.responses(), 6);
  EXPECT_EQ(t.counts(), (std::map<std::string, int>{{"CT", 3}, {"MR", 1}, {"PT", 1}, {"other", 1}, {"none", 1}}));
  EXPECT_EQ(t.newest().at("CT"), local(2024, 1, 31, 9, 30, 0));
  EXPECT_EQ(t.newest().at("PT"), local(2024, 1, 31, 9, 0, 0));
  EXPECT_EQ(t.newest().at("other"), local(2024, 1, 31, 10, 0, 0));
  EXPECT_EQ(t.newest().at("none"), local(2024, 1, 31, 11, 0, 0));
}

TEST(FindGroups, SeenGroupsStayAtZeroAndAgeOnlyForThisRun) {
  std::set<std::string> seen;
  double now = local(2024, 1, 31, 12, 0, 0);
  FindTally first;
  first.add({"CT"}, "20240131", "110000");
  first.add({"MR"}, "20240131", "100000");
  ProbeResult r1 = ProbeResult::ok();
  add_group_samples(r1, first, seen, now);
  EXPECT_EQ(test::sample_value(r1, "pacs_dicom_find_matches", {{"group", "CT"}}), 1);
  EXPECT_EQ(test::sample_value(r1, "pacs_dicom_find_newest_age_seconds", {{"group", "CT"}}), 3600);
  EXPECT_EQ(test::sample_value(r1, "pacs_dicom_find_newest_age_seconds", {{"group", "MR"}}), 7200);

  FindTally second;  // MR is gone this run, PT arrives; a study from the future ages 0
  second.add({"PT"}, "20240131", "130000");
  ProbeResult r2 = ProbeResult::ok();
  add_group_samples(r2, second, seen, now);
  EXPECT_EQ(test::sample_value(r2, "pacs_dicom_find_matches", {{"group", "CT"}}), 0);
  EXPECT_EQ(test::sample_value(r2, "pacs_dicom_find_matches", {{"group", "MR"}}), 0);
  EXPECT_EQ(test::sample_value(r2, "pacs_dicom_find_matches", {{"group", "PT"}}), 1);
  EXPECT_EQ(test::sample_value(r2, "pacs_dicom_find_newest_age_seconds", {{"group", "PT"}}), 0);
  EXPECT_EQ(test::find_sample(r2, "pacs_dicom_find_newest_age_seconds", {{"group", "CT"}}), nullptr);
  EXPECT_EQ(test::find_sample(r2, "pacs_dicom_find_newest_age_seconds", {{"group", "MR"}}), nullptr);
  for (const auto& s : r2.samples) ASSERT_EQ(s.labels.size(), 1u);
}

const DicomProbe& as_dicom(const std::unique_ptr<Probe>& p) {
  auto* d = dynamic_cast<const DicomProbe*>(p.get());
  if (!d) throw std::runtime_error("not a DicomProbe");
  return *d;
}

const std::string kBase = "[[dicom]]\nname = \"a\"\nhost = \"127.0.0.1\"\ncalled_ae_title = \"A\"\n"
                          "checks = [\"find\"]\n[dicom.find]\n";

TEST(FindGroupsConfig, GroupByAtStudyAndSeriesLevel) {
  auto c = parse_config(kBase + "group_by = \"ModalitiesInStudy\"\nkeys = { StudyDate = \"today\" }\n", "t.toml");
  auto p = c->probes.at(0).make();
  EXPECT_EQ(as_dicom(p).options().find.group_by, FindOptions::GroupBy::modalities_in_study);
  EXPECT_EQ(as_dicom(p).options().find.level, FindOptions::Level::study);

  c = parse_config(kBase + "level = \"SERIES\"\ngroup_by = \"Modality\"\n", "t.toml");
  p = c->probes.at(0).make();
  EXPECT_EQ(as_dicom(p).options().find.group_by, FindOptions::GroupBy::modality);
  EXPECT_EQ(as_dicom(p).options().find.level, FindOptions::Level::series);
  EXPECT_EQ(as_dicom(p).options().find.model, FindOptions::Model::study_root);

  c = parse_config(kBase + "level = \"SERIES\"\n", "t.toml");  // SERIES without grouping: one count
  p = c->probes.at(0).make();
  EXPECT_EQ(as_dicom(p).options().find.group_by, FindOptions::GroupBy::none);

  c = parse_config(kBase, "t.toml");
  p = c->probes.at(0).make();
  EXPECT_EQ(as_dicom(p).options().find.group_by, FindOptions::GroupBy::none);
}

TEST(FindGroupsConfig, GroupByNeedsItsLevel) {
  test::expect_config_error(kBase + "group_by = \"Modality\"\n",
                            "t.toml:7: dicom[0].find.group_by: \"Modality\" needs level \"SERIES\" "
                            "(at STUDY level use \"ModalitiesInStudy\")");
  test::expect_config_error(kBase + "level = \"SERIES\"\ngroup_by = \"ModalitiesInStudy\"\n",
                            "t.toml:8: dicom[0].find.group_by: \"ModalitiesInStudy\" needs level \"STUDY\"");
  test::expect_config_error(kBase + "level = \"PATIENT\"\ngroup_by = \"ModalitiesInStudy\"\n",
                            "t.toml:8: dicom[0].find.group_by: \"ModalitiesInStudy\" needs level \"STUDY\"");
  test::expect_config_error(kBase + "group_by = \"PatientName\"\n",
                            "t.toml:7: dicom[0].find.group_by: must be \"ModalitiesInStudy\" (level STUDY) or "
                            "\"Modality\" (level SERIES)");
  test::expect_config_error(kBase + "group_by = 3\n", "t.toml:7: dicom[0].find.group_by: must be a string");
}

}  // namespace
}  // namespace pacs::dicom
