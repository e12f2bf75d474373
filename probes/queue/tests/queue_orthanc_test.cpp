// Orthanc queue probe against a real Orthanc on loopback: jobs created
// through its REST API (a store to a closed port fails, a store to a silent
// peer runs/pends, a paused job, an archive job succeeds) and /statistics
// after real uploads; a stopped Orthanc gives connection_refused while other
// probes keep working.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "probes/log.h"
#include "probes/queue/queue.h"
#include "tests/support/http_test_server.h"
#include "tests/support/probe_testing.h"
#include "tests/support/support.h"

namespace pacs::queue {
namespace {

using namespace std::chrono_literals;
using test::ctx_for;
using test::find_sample;
using test::sample_value;
using json = nlohmann::json;

class CurlEnv : public ::testing::Environment {
 public:
  void SetUp() override {
    Logger log(LogLevel::error);
    kind().init(log);
  }
  void TearDown() override { kind().shutdown(); }
};
const auto* const kCurlEnv = ::testing::AddGlobalTestEnvironment(new CurlEnv);


// A TCP listener that never accepts: connections complete in the kernel
// backlog and then nothing answers (a hung DICOM peer).
class SilentPeer {
 public:
  SilentPeer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  ~SilentPeer() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1, port_ = 0;
};

json get_json(int port, const std::string& path) {
  auto r = test::http_get(port, path);
  EXPECT_EQ(r.status, 200) << path << ": " << r.error << r.body;
  return json::parse(r.body, nullptr, false);
}

std::string post_json(int port, const std::string& path, const json& body) {
  auto r = test::http_request(port, "POST", path, {{"Content-Type", "application/json"}}, body.dump());
  EXPECT_EQ(r.status, 200) << path << ": " << r.body;
  auto j = json::parse(r.body, nullptr, false);
  return j.is_object() && j.contains("ID") ? j["ID"].get<std::string>() : std::string();
}

std::string wait_job_state(int port, const std::string& id, const std::string& want, std::chrono::seconds limit) {
  auto end = Clock::now() + limit;
  std::string state;
  while (Clock::now() < end) {
    auto j = get_json(port, "/jobs/" + id);
    state = j.value("State", "");
    if (state == want) break;
    std::this_thread::sleep_for(50ms);
  }
  return state;
}

// (lower-case state, job type) -> count, straight from Orthanc.
std::map<std::pair<std::string, std::string>, int> raw_counts(int port) {
  std::map<std::pair<std::string, std::string>, int> m;
  for (const auto& job : get_json(port, "/jobs?expand")) {
    std::string s = job["State"];
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ++m[{s, job["Type"].get<std::string>()}];
  }
  return m;
}

std::map<std::pair<std::string, std::string>, int> probe_counts(const ProbeResult& r) {
  std::map<std::pair<std::string, std::string>, int> m;
  for (const auto& s : r.samples) {
    if (s.name != "pacs_queue_items" || s.value == 0) continue;
    std::string state, type;
    for (const auto& [k, v] : s.labels) (k == "state" ? state : type) = v;
    m[{state, type}] = static_cast<int>(s.value);
  }
  return m;
}

TEST(OrthancQueue, JobsByStateAndArchiveStatistics) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  SilentPeer silent;
  test::Orthanc::Options opts;
  opts.modalities["closed"] = {"NOBODY", "127.0.0.1", test::free_port()};
  opts.modalities["silent"] = {"SILENT", "127.0.0.1", silent.port()};
  opts.extra_json.push_back("\"ConcurrentJobs\": 1");
  test::Orthanc orthanc(opts);
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  const int port = orthanc.http_port();
  OrthancJobsProbe probe(orthanc.url(), {});

  // Empty archive, no jobs: every state at 0, archive at 0.
  auto r = probe.run(ctx_for(10s));
  ASSERT_TRUE(r.success) << r.message;
  for (std::string s : {"pending", "running", "paused", "failure", "success", "retry"}) {
    EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"state", s}}), 0) << s;
  }
  EXPECT_EQ(sample_value(r, "pacs_archive_studies"), 0);
  EXPECT_EQ(sample_value(r, "pacs_queue_oldest_item_age_seconds"), 0);
  EXPECT_EQ(sample_value(r, "pacs_http_status_code"), 200);

  // Two real studies.
  test::TempDir tmp;
  for (int i = 0; i < 2; ++i) {
    auto f = test::make_dicom_file(tmp / ("i" + std::to_string(i) + ".dcm"), "TEST^P" + std::to_string(i),
                                   "PID" + std::to_string(i), "20240101");
    ASSERT_EQ(orthanc.upload(f), 200);
  }
  auto studies = get_json(port, "/studies");
  ASSERT_EQ(studies.size(), 2u);
  const std::string study = studies[0];

  // A failed job (store to a closed port) and a successful one (archive).
  auto failed = post_json(port, "/modalities/closed/store", {{"Resources", {study}}, {"Asynchronous", true}});
  ASSERT_EQ(wait_job_state(port, failed, "Failure", 20s), "Failure") << orthanc.log();
  auto archived = post_json(port, "/studies/" + study + "/archive", {{"Asynchronous", true}});
  ASSERT_EQ(wait_job_state(port, archived, "Success", 20s), "Success") << orthanc.log();

  // Stores to a silent peer: with ConcurrentJobs 1 one runs (until Orthanc's
  // 2 s DicomScuTimeout) while the others wait; one of them is paused.
  std::vector<std::string> slow;
  for (int i = 0; i < 3; ++i) {
    slow.push_back(post_json(port, "/modalities/silent/store", {{"Resources", {study}}, {"Asynchronous", true}}));
  }
  post_json(port, "/jobs/" + slow[2] + "/pause", json::object());
  ASSERT_EQ(wait_job_state(port, slow[2], "Paused", 10s), "Paused");

  // Compare with Orthanc's own list read just before and after the probe;
  // jobs move on their own, so retry until both reads agree.
  bool compared = false;
  for (int attempt = 0; attempt < 5 && !compared; ++attempt) {
    auto before = raw_counts(port);
    r = probe.run(ctx_for(10s));
    auto after = raw_counts(port);
    if (before != after) continue;
    compared = true;
    ASSERT_TRUE(r.success) << r.message;
    EXPECT_EQ(probe_counts(r), before);
  }
  EXPECT_TRUE(compared) << "Orthanc's job list never held still";
  EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"state", "failure"}, {"job_type", "DicomModalityStore"}}), 1);
  EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"state", "paused"}, {"job_type", "DicomModalityStore"}}), 1);
  EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"state", "success"}, {"job_type", "Archive"}}), 1);
  // Zero-filled: every state exists for every job type seen.
  EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"state", "retry"}, {"job_type", "Archive"}}), 0);
  EXPECT_EQ(sample_value(r, "pacs_queue_items", {{"state", "failure"}, {"job_type", "Archive"}}), 0);
  double pending = sample_value(r, "pacs_queue_items", {{"state", "pending"}, {"job_type", "DicomModalityStore"}});
  double age = sample_value(r, "pacs_queue_oldest_item_age_seconds");
  if (pending > 0) {
    EXPECT_GE(age, 0);
    EXPECT_LT(age, 120) << "CreationTime parsed in the wrong time zone?";
  } else {
    EXPECT_EQ(age, 0);
  }

  auto stats = get_json(port, "/statistics");
  EXPECT_EQ(sample_value(r, "pacs_archive_studies"), 2);
  EXPECT_EQ(sample_value(r, "pacs_archive_series"), 2);
  EXPECT_EQ(sample_value(r, "pacs_archive_instances"), 2);
  EXPECT_EQ(sample_value(r, "pacs_archive_stored_bytes"), std::stod(stats["TotalDiskSize"].get<std::string>()));
  EXPECT_GT(sample_value(r, "pacs_archive_stored_bytes"), 0);
}

TEST(OrthancQueue, PendingJobAgeFromCreationTime) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  SilentPeer silent;
  test::Orthanc::Options opts;
  opts.modalities["silent"] = {"SILENT", "127.0.0.1", silent.port()};
  opts.extra_json.push_back("\"ConcurrentJobs\": 1");
  test::Orthanc orthanc(opts);
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  const int port = orthanc.http_port();
  test::TempDir tmp;
  ASSERT_EQ(orthanc.upload(test::make_dicom_file(tmp / "a.dcm", "TEST^A", "PA", "20240101")), 200);
  const std::string study = get_json(port, "/studies")[0];
  // Several slow jobs in a row keep at least one pending for seconds.
  for (int i = 0; i < 4; ++i) post_json(port, "/modalities/silent/store", {{"Resources", {study}}, {"Asynchronous", true}});
  std::this_thread::sleep_for(1200ms);
  auto r = OrthancJobsProbe(orthanc.url(), {}).run(ctx_for(10s));
  ASSERT_TRUE(r.success) << r.message;
  EXPECT_GE(sample_value(r, "pacs_queue_items", {{"state", "pending"}, {"job_type", "DicomModalityStore"}}), 1);
  double age = sample_value(r, "pacs_queue_oldest_item_age_seconds");
  EXPECT_GE(age, 1.0) << "pending for at least the 1.2 s we slept";
  EXPECT_LT(age, 60.0) << "CreationTime parsed in the wrong time zone?";
}

TEST(OrthancQueue, StoppedOrthancIsConnectionRefusedOthersUnaffected) {
  PACS_REQUIRE_PEER("Orthanc");
  test::Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  OrthancJobsProbe probe(orthanc.url(), {});
  ASSERT_TRUE(probe.run(ctx_for(10s)).success);

  test::LoopbackHttpServer other_srv(
      [](const test::LoopbackRequest&) { return test::LoopbackReply::json(R"({"depth": 3})"); });
  HttpJsonProbe other(other_srv.url("/"), {{"depth", "/depth"}}, {});
  test::TempDir spool;
  spool.write("a", "x");
  SpoolOptions so;
  so.path = spool.path().string();
  SpoolDirectoryProbe spool_probe(so);

  orthanc.stop();
  ProbeResult down, json_r, spool_r;
  std::thread t1([&] { down = probe.run(ctx_for(5s)); });
  std::thread t2([&] { json_r = other.run(ctx_for(5s)); });
  std::thread t3([&] { spool_r = spool_probe.run(ctx_for(5s)); });
  t1.join();
  t2.join();
  t3.join();
  EXPECT_EQ(down.reason, Reason::connection_refused) << down.message;
  EXPECT_EQ(find_sample(down, "pacs_http_status_code"), nullptr);
  EXPECT_TRUE(json_r.success) << json_r.message;
  EXPECT_EQ(sample_value(json_r, "pacs_queue_json_value", {{"name", "depth"}}), 3);
  EXPECT_TRUE(spool_r.success) << spool_r.message;

  // And back.
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  auto r = probe.run(ctx_for(10s));
  EXPECT_TRUE(r.success) << r.message;
}

}  // namespace
}  // namespace pacs::queue
