// The built agent probing real DICOM peers: PHI never leaves the agent, and
// one hanging AE does not delay the others.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <thread>

#include "tests/support/loopback_clients.h"
#include "tests/support/support.h"

namespace pacs::test {
namespace {
using namespace std::chrono_literals;



// Accepts TCP connections and never says a word (a hung PACS).
class SilentPeer {
 public:
  SilentPeer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 64);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        accepted_.push_back(c);  // keep it open, say nothing
      }
    });
  }
  ~SilentPeer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (int c : accepted_) ::close(c);
  }
  int port() const { return port_; }

 private:
  int fd_, port_;
  std::vector<int> accepted_;
  std::thread thread_;
};

// A TCP relay to a peer that keeps what the peer sent: the control that PHI
// really reached the agent's input.
class RecordingRelay {
 public:
  explicit RecordingRelay(int upstream_port) : upstream_(upstream_port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 64);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    accept_thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        int u = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in up{};
        up.sin_family = AF_INET;
        up.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        up.sin_port = htons(static_cast<uint16_t>(upstream_));
        if (::connect(u, reinterpret_cast<sockaddr*>(&up), sizeof up) != 0) {
          ::close(u);
          ::close(c);
          continue;
        }
        std::lock_guard lk(mu_);
        fds_.push_back(c);
        fds_.push_back(u);
        pumps_.emplace_back([this, c, u] { pump(c, u, false); });
        pumps_.emplace_back([this, c, u] { pump(u, c, true); });
      }
    });
  }
  ~RecordingRelay() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    accept_thread_.join();
    std::vector<std::thread> pumps;
    {
      std::lock_guard lk(mu_);
      pumps.swap(pumps_);
    }
    for (auto& t : pumps) t.join();
    for (int fd : fds_) ::close(fd);
  }
  int port() const { return port_; }
  std::string from_peer() {
    std::lock_guard lk(mu_);
    return recorded_;
  }

 private:
  // Copies from -> to until either side closes; `record`: keep the bytes.
  void pump(int from, int to, bool record) {
    char buf[16384];
    ssize_t n;
    while ((n = ::read(from, buf, sizeof buf)) > 0) {
      if (record) {
        std::lock_guard lk(mu_);
        recorded_.append(buf, static_cast<size_t>(n));
      }
      if (::send(to, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
    }
    ::shutdown(to, SHUT_WR);
    if (record) {  // the upstream side ends last: close both
      ::shutdown(from, SHUT_RDWR);
    }
  }
  int upstream_, fd_, port_;
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<std::thread> pumps_;
  std::vector<int> fds_;
  std::string recorded_;
};

TEST(DicomAgent, NoPhiAnywhereAndHungAeDoesNotDelayOthers) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  TempDir dir;
  Orthanc orthanc;
  ASSERT_TRUE(orthanc.start()) << orthanc.log();
  // A canary patient whose identifiers must never appear anywhere.
  const std::string phi_name = "PHI^CANARY", phi_id = "PHI-CANARY-ID";
  char today[16];
  std::time_t now = std::time(nullptr);
  std::strftime(today, sizeof today, "%Y%m%d", std::localtime(&now));
  auto f = make_dicom_file(dir / "canary.dcm", phi_name, phi_id, today);
  ASSERT_EQ(orthanc.upload(f), 200);

  SilentPeer silent;
  RecordingRelay relay(orthanc.dicom_port());
  int agent_port = free_port();
  auto cfg = dir.write("agent.toml",
                       "[agent]\ncalling_ae_title = \"PACS_AGENT\"\n\n"
                       "[[dicom]]\nname = \"archive\"\nhost = \"127.0.0.1\"\nport = " +
                           std::to_string(relay.port()) +
                           "\ncalled_ae_title = \"ORTHANC\"\nchecks = [\"echo\", \"find\"]\n"
                           "interval = \"1s\"\ntimeout = \"800ms\"\n"
                           "  [dicom.find]\n  level = \"STUDY\"\n"
                           // The patient's name and ID as return keys: the answers carry them.
                           "  keys = { StudyDate = \"today\", PatientName = \"\", PatientID = \"\" }\n\n"
                           "[[dicom]]\nname = \"hung\"\nhost = \"127.0.0.1\"\nport = " +
                           std::to_string(silent.port()) +
                           "\ncalled_ae_title = \"HUNG\"\nchecks = [\"echo\"]\ninterval = \"2s\"\ntimeout = \"2s\"\n");
  Process agent({agent_binary(), "--config.file=" + cfg.string(),
                 "--web.listen-address=127.0.0.1:" + std::to_string(agent_port), "--log.level=debug"},
                dir / "agent.log");
  ASSERT_TRUE(wait_for_http(agent_port)) << agent.log();

  // While "hung" blocks for its full 2 s deadline each run, "archive" keeps
  // its 1 s schedule: count its runs over a window.
  auto runs = [&](const std::string& probe, const std::string& target) {
    return metric_value(http_get(agent_port, "/metrics").body,
                    "pacs_probe_runs_total{probe=\"" + probe + "\",target=\"" + target + "\"}")
        .value_or(0);
  };
  std::this_thread::sleep_for(2500ms);
  double echo_start = runs("dicom_echo", "archive");
  std::this_thread::sleep_for(6s);
  double echo_end = runs("dicom_echo", "archive");
  EXPECT_GE(echo_end - echo_start, 5) << "archive lost its 1 s schedule while another AE hung";

  auto metrics = http_get(agent_port, "/metrics").body;
  EXPECT_EQ(metric_value(metrics, "pacs_probe_success{probe=\"dicom_echo\",target=\"archive\"}"), 1.0) << metrics;
  EXPECT_EQ(metric_value(metrics, "pacs_probe_success{probe=\"dicom_find\",target=\"archive\"}"), 1.0) << metrics;
  EXPECT_EQ(metric_value(metrics, "pacs_dicom_find_matches{probe=\"dicom_find\",target=\"archive\"}"), 1.0) << metrics;
  EXPECT_EQ(metric_value(metrics, "pacs_probe_success{probe=\"dicom_echo\",target=\"hung\"}"), 0.0) << metrics;
  EXPECT_EQ(metric_value(metrics, "pacs_probe_failures_total{probe=\"dicom_echo\",target=\"hung\",reason=\"association_timeout\"}")
                .value_or(0) >= 1,
            true)
      << metrics;
  EXPECT_EQ(runs("dicom_echo", "hung") >= 2, true);
  EXPECT_EQ(metric_value(metrics, "pacs_probe_skipped_runs_total{probe=\"dicom_echo\",target=\"archive\"}"), 0.0);

  auto probe = http_get(agent_port, "/probe?target=archive");
  EXPECT_EQ(metric_value(probe.body, "probe_success"), 1.0) << probe.body;
  auto probe_hung = http_get(agent_port, "/probe?target=hung", {{"X-Prometheus-Scrape-Timeout-Seconds", "1.5"}});
  EXPECT_EQ(metric_value(probe_hung.body, "probe_success"), 0.0) << probe_hung.body;
  EXPECT_LE(metric_value(probe_hung.body, "probe_duration_seconds").value_or(99), 1.0 + 0.5) << probe_hung.body;
  auto status = http_get(agent_port, "/").body;

  agent.kill_signal(SIGTERM);
  ASSERT_TRUE(agent.wait_exit(15s));
  std::string logs = agent.log();
  EXPECT_NE(logs.find("level=debug"), std::string::npos) << "debug logging was not on";
  // Control: the canary did reach the agent, in Orthanc's C-FIND answers.
  std::string seen = relay.from_peer();
  EXPECT_NE(seen.find(phi_name), std::string::npos) << "control: the patient name never reached the agent";
  EXPECT_NE(seen.find(phi_id), std::string::npos) << "control: the patient ID never reached the agent";
  for (const std::string& secret : {phi_name, phi_id, std::string("PHI^"), std::string("CANARY")}) {
    EXPECT_EQ(metrics.find(secret), std::string::npos) << secret << " in /metrics";
    EXPECT_EQ(probe.body.find(secret), std::string::npos) << secret << " in /probe";
    EXPECT_EQ(status.find(secret), std::string::npos) << secret << " in status page";
    EXPECT_EQ(logs.find(secret), std::string::npos) << secret << " in the agent's debug log";
  }
}

}  // namespace
}  // namespace pacs::test
