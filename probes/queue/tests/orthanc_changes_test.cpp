// Ingest counters without a peer: the state file (round trip, every corrupt
// variant refused, atomic replacement) and one /changes page applied to the
// state (counts only NewInstance/NewStudy above the cursor, never twice; a
// log end below the cursor is a replaced database; malformed pages refused);
// config keys of type = "orthanc".
#include <sys/stat.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "agent/config.h"
#include "probes/queue/orthanc_changes.h"
#include "tests/support/probe_testing.h"
#include "tests/support/support.h"

namespace pacs::queue {
namespace {

using json = nlohmann::json;

TEST(ChangeState, RoundTrip) {
  ChangeState s;
  s.url = "http://127.0.0.1:8042";
  s.last_seq = 4711;
  s.instances = 123456789012ull;
  s.studies = 42;
  s.resets = 1;
  std::string err;
  auto back = parse_change_state(change_state_json(s), err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(back->url, s.url);
  EXPECT_EQ(back->last_seq, 4711);
  EXPECT_EQ(back->instances, s.instances);
  EXPECT_EQ(back->studies, 42u);
  EXPECT_EQ(back->resets, 1u);
  s.last_seq.reset();
  back = parse_change_state(change_state_json(s), err);
  ASSERT_TRUE(back) << err;
  EXPECT_FALSE(back->last_seq);
}

TEST(ChangeState, CorruptFilesAreRefusedWithAReason) {
  const std::string good = R"({"format":1,"url":"u","last_seq":5,"received_instances":1,"received_studies":1,"change_log_resets":0})";
  std::string err;
  ASSERT_TRUE(parse_change_state(good, err)) << err;
  struct Case {
    std::string text, error;
  };
  for (const auto& c : std::vector<Case>{
           {"", "not valid JSON"},
           {"{\"format\":1,", "not valid JSON"},
           {"[]", "not valid JSON"},
           {R"({"format":2,"url":"u","last_seq":5,"received_instances":1,"received_studies":1,"change_log_resets":0})",
            "unknown format (want \"format\": 1)"},
           {R"({"format":1,"url":"u","last_seq":5,"received_instances":-1,"received_studies":1,"change_log_resets":0})",
            "\"received_instances\" is not a non-negative integer"},
           {R"({"format":1,"url":"u","last_seq":5,"received_instances":1,"received_studies":"1","change_log_resets":0})",
            "\"received_studies\" is not a non-negative integer"},
           {R"({"format":1,"url":"u","last_seq":5,"received_instances":1,"received_studies":1})",
            "\"change_log_resets\" is not a non-negative integer"},
           {R"({"format":1,"url":3,"last_seq":5,"received_instances":1,"received_studies":1,"change_log_resets":0})",
            "\"url\" is not a string"},
           {R"({"format":1,"url":"u","received_instances":1,"received_studies":1,"change_log_resets":0})",
            "no \"last_seq\""},
           {R"({"format":1,"url":"u","last_seq":-5,"received_instances":1,"received_studies":1,"change_log_resets":0})",
            "\"last_seq\" is not a non-negative integer"},
       }) {
    err.clear();
    EXPECT_FALSE(parse_change_state(c.text, err)) << c.text;
    EXPECT_EQ(err, c.error) << c.text;
  }
}

TEST(ChangeState, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  test::TempDir tmp;
  auto path = (tmp / "s.json").string();
  ASSERT_EQ(write_file_atomically(path, "one\n"), 0);
  ASSERT_EQ(write_file_atomically(path, "two\n"), 0);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), "two\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(write_file_atomically((tmp / "missing" / "s.json").string(), "x"), ENOENT);
}

json change(std::int64_t seq, const std::string& type) {
  return {{"ChangeType", type}, {"Date", "20240131T101010"}, {"ID", "x"}, {"Path", "/x"}, {"ResourceType", "Instance"},
          {"Seq", seq}};
}

TEST(ChangesPage, CountsNewInstancesAndStudiesAboveTheCursorOnce) {
  ChangeState s;
  s.last_seq = 10;
  json page = {{"Changes",
                {change(9, "NewInstance") /* already counted */, change(11, "NewInstance"), change(12, "NewSeries"),
                 change(13, "NewStudy"), change(14, "NewPatient"), change(15, "NewInstance"),
                 change(16, "StableStudy"), change(17, "StableSeries"), change(18, "Deleted")}},
               {"Done", false},
               {"Last", 18}};
  bool done = true, back = true;
  std::string err;
  ASSERT_TRUE(apply_changes_page(s, page, done, back, err)) << err;
  EXPECT_FALSE(done);
  EXPECT_FALSE(back);
  EXPECT_EQ(s.instances, 2u);
  EXPECT_EQ(s.studies, 1u);
  EXPECT_EQ(s.last_seq, 18);
  // The same page again (a retry after a lost answer) counts nothing.
  ChangeState again = s;
  json same = page;
  same["Changes"].push_back(change(19, "NewInstance"));
  ASSERT_TRUE(apply_changes_page(again, same, done, back, err)) << err;
  EXPECT_EQ(again.instances, 3u);
  EXPECT_EQ(again.last_seq, 19);
}

TEST(ChangesPage, EmptyPageBelowTheCursorIsAReplacedDatabase) {
  ChangeState s;
  s.last_seq = 500;
  s.instances = 70;
  bool done = false, back = false;
  std::string err;
  // Nothing new, log end at the cursor or above (a cleared log keeps its numbers).
  ASSERT_TRUE(apply_changes_page(s, {{"Changes", json::array()}, {"Done", true}, {"Last", 500}}, done, back, err));
  EXPECT_FALSE(back);
  EXPECT_EQ(s.last_seq, 500);
  // The log ends at 12 now: a new database. Counting goes on from there.
  ASSERT_TRUE(apply_changes_page(s, {{"Changes", json::array()}, {"Done", true}, {"Last", 12}}, done, back, err));
  EXPECT_TRUE(back);
  EXPECT_TRUE(done);
  EXPECT_EQ(s.last_seq, 12);
  EXPECT_EQ(s.instances, 70u);
  EXPECT_EQ(s.resets, 1u);
}

TEST(ChangesPage, MalformedPagesAreRefused) {
  ChangeState s;
  s.last_seq = 1;
  bool done, back;
  std::string err;
  EXPECT_FALSE(apply_changes_page(s, json::array(), done, back, err));
  EXPECT_EQ(err, "expected {\"Changes\": [...], \"Done\": bool, \"Last\": number}");
  EXPECT_FALSE(apply_changes_page(s, {{"Changes", json::array()}, {"Done", true}, {"Last", "7"}}, done, back, err));
  EXPECT_EQ(err, "\"Last\" is not a non-negative integer");
  EXPECT_FALSE(apply_changes_page(s, {{"Changes", {{{"Seq", 3}}}}, {"Done", true}, {"Last", 3}}, done, back, err));
  EXPECT_EQ(err, "a change without Seq or ChangeType");
  EXPECT_FALSE(
      apply_changes_page(s, {{"Changes", {change(1, "NewInstance")}}, {"Done", false}, {"Last", 1}}, done, back, err));
  EXPECT_EQ(err, "changes at or below the requested sequence number");
  EXPECT_EQ(s.instances, 0u);
  EXPECT_EQ(s.last_seq, 1);
}

TEST(OrthancIngestConfig, StateFileDefaultsPerTargetAndCanBeTurnedOff) {
  EXPECT_EQ(default_state_file("orthanc-jobs"), "/var/lib/pacs-agent/orthanc-jobs.orthanc-changes.json");
  auto c = parse_config("[[queue]]\nname = \"o\"\ntype = \"orthanc\"\nurl = \"http://127.0.0.1:8042\"\n"
                        "state_file = \"/tmp/x/o.json\"\n", "t.toml");
  EXPECT_EQ(c->probes.size(), 1u);
  c = parse_config("[[queue]]\nname = \"o\"\ntype = \"orthanc\"\nurl = \"http://127.0.0.1:8042\"\n"
                   "ingest_counters = false\n", "t.toml");
  EXPECT_EQ(c->probes.size(), 1u);
  test::expect_config_error("[[queue]]\nname = \"o\"\ntype = \"orthanc\"\nurl = \"http://127.0.0.1:8042\"\n"
                            "ingest_counters = false\nstate_file = \"/tmp/o.json\"\n",
                            "t.toml:6: queue[0].state_file: only applies with ingest_counters = true");
  test::expect_config_error("[[queue]]\nname = \"o\"\ntype = \"orthanc\"\nurl = \"http://127.0.0.1:8042\"\n"
                            "state_file = \"o.json\"\n",
                            "t.toml:5: queue[0].state_file: must be the absolute path of a file");
  test::expect_config_error("[[queue]]\nname = \"o\"\ntype = \"orthanc\"\nurl = \"http://127.0.0.1:8042\"\n"
                            "state_file = \"/var/lib/pacs-agent/\"\n",
                            "t.toml:5: queue[0].state_file: must be the absolute path of a file");
}

}  // namespace
}  // namespace pacs::queue
