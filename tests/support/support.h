// Test support shared by every suite: temp dirs, free loopback ports, real
// child processes (peers such as Orthanc, storescp, dcmqrscp, promtool), and
// a small blocking HTTP client. Nothing here talks to anything but 127.0.0.1.
#pragma once

#include <chrono>
#include <cstdlib>
#include <memory>
#include <tuple>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace pacs::test {

// A fresh directory under $TMPDIR, removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  // Writes `content` to path()/name (creating parent dirs) and returns the path.
  std::filesystem::path write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0).
int free_port();
// Polls until something accepts TCP connections on 127.0.0.1:port.
bool wait_for_port(int port, std::chrono::milliseconds timeout = std::chrono::seconds(15));

// Absolute path of an executable on PATH (or in /usr/sbin), or nullopt.
std::optional<std::string> find_program(const std::string& name);

// A child process; stopped (SIGTERM, then SIGKILL after a grace period) on
// destruction. stdout+stderr go to a log file so failures can be shown.
class Process {
 public:
  Process(std::vector<std::string> argv, std::filesystem::path log_file,
          std::map<std::string, std::string> extra_env = {},
          std::optional<std::filesystem::path> cwd = std::nullopt);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  int pid() const { return pid_; }
  bool running();
  // Sends `sig` and waits up to `grace` for exit, then SIGKILLs. Returns the
  // exit status as waitpid reported it (or -1 if it was already reaped).
  int stop(int sig = 15, std::chrono::milliseconds grace = std::chrono::seconds(5));
  void kill_signal(int sig);
  // Waits for exit (up to timeout); returns the exit code, or nullopt.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::string log() const;  // what the process printed so far
  const std::filesystem::path& log_file() const { return log_file_; }

 private:
  int pid_ = -1;
  int status_ = -1;
  std::filesystem::path log_file_;
};

struct HttpResponse {
  int status = 0;  // 0 = no response (connect error etc.)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string error;
};

// One request to 127.0.0.1:port over a fresh connection.
HttpResponse http_request(int port, const std::string& method, const std::string& target,
                          const std::map<std::string, std::string>& headers = {},
                          const std::string& body = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));
inline HttpResponse http_get(int port, const std::string& target,
                             const std::map<std::string, std::string>& headers = {}) {
  return http_request(port, "GET", target, headers);
}

// RFC 4648 base64 (for Authorization: Basic headers).
std::string base64(const std::string& in);

// Runs a command to completion, capturing stdout+stderr. Returns exit code.
int run_command(const std::vector<std::string>& argv, std::string* output = nullptr,
                std::chrono::milliseconds timeout = std::chrono::seconds(60));

// A real Orthanc (Debian package) on free loopback ports, in a temp dir.
class Orthanc {
 public:
  struct Options {
    std::string aet = "ORTHANC";
    // Remote modalities Orthanc knows: name -> (AET, host, port).
    std::map<std::string, std::tuple<std::string, std::string, int>> modalities;
    bool check_called_aet = true;
    // Extra top-level JSON members, raw (e.g. "\"DicomTlsEnabled\": true").
    std::vector<std::string> extra_json;
    // Plugins to load (shared object paths), e.g. dicomweb_plugin().
    std::vector<std::string> plugins;
    // HTTP basic auth users (name -> password); empty = authentication off.
    // start() and upload() authenticate as the first user.
    std::map<std::string, std::string> users;
  };
  // The Debian orthanc-dicomweb plugin, or "" when it is not installed.
  static std::string dicomweb_plugin();
  explicit Orthanc(Options opts);
  Orthanc() : Orthanc(Options{}) {}
  ~Orthanc();
  int dicom_port() const { return dicom_port_; }
  int http_port() const { return http_port_; }
  const std::string& aet() const { return opts_.aet; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(http_port_); }
  bool start();  // (re)starts, waits until /system answers
  void stop();
  // POSTs a DICOM file to /instances; returns the HTTP status.
  int upload(const std::filesystem::path& dicom_file);
  // GET/DELETE etc. on the REST API, authenticated when users are set.
  HttpResponse rest(const std::string& method, const std::string& target, const std::string& body = {});
  std::string log() const;
  const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  std::map<std::string, std::string> auth_header() const;
  void write_config();
  Options opts_;
  TempDir dir_;
  int dicom_port_, http_port_;
  std::unique_ptr<Process> proc_;
};

// Writes a tiny Secondary Capture DICOM file (8x8, MONOCHROME2) with the
// given patient/study values and fresh UIDs, using dcmtk's dump2dcm.
std::filesystem::path make_dicom_file(const std::filesystem::path& out, const std::string& patient_name,
                                      const std::string& patient_id, const std::string& study_date,
                                      const std::string& modality = "OT");

// The same with every attribute a test may need to choose: a study with
// several series (same study_uid, different series_uid/modality) or several
// instances, a study time for "newest study" arithmetic. Empty UIDs are
// generated fresh; an empty modality leaves Modality empty (a real case).
struct DicomFileSpec {
  std::string patient_name = "TEST^PATIENT";
  std::string patient_id = "TEST-ID";
  std::string study_date;        // YYYYMMDD
  std::string study_time = "101010";
  std::string modality = "OT";
  std::string study_uid;         // "" = fresh
  std::string series_uid;        // "" = fresh
  int instance_number = 1;
};
std::filesystem::path make_dicom_file(const std::filesystem::path& out, const DicomFileSpec& spec);

// The built agent: $PACS_AGENT_BINARY (set by ctest), else build/pacs-agent.
inline std::string agent_binary() {
  const char* b = std::getenv("PACS_AGENT_BINARY");
  return b ? b : "build/pacs-agent";
}

// The value of one series in Prometheus text exposition, e.g.
// metric_value(text, "pacs_probe_success{probe=\"x\",target=\"y\"}"); nullopt when absent.
std::optional<double> metric_value(const std::string& text, const std::string& series);

// Runs `fn` in a forked child that dropped to uid/gid 65534 (nobody), and
// returns what it returned (when not root: as is). Tests run as root, which no permission check
// refuses; this is how they see EACCES.
std::string run_as_nobody(const std::function<std::string()>& fn);

// True when the binary is absent; the caller GTEST_SKIPs with the message.
// In CI (CI=true) an absent peer is a failure, not a skip.
std::optional<std::string> missing_peer(const std::string& program);

}  // namespace pacs::test

// Skips the test when a peer program is absent on a developer machine; in CI
// (CI set) the absence fails the test, because CI installs every peer.
#define PACS_REQUIRE_PEER(program)                                                  \
  do {                                                                             \
    if (auto missing_ = ::pacs::test::missing_peer(program)) {                     \
      if (std::getenv("CI")) FAIL() << *missing_;                                  \
      GTEST_SKIP() << *missing_;                                                   \
    }                                                                              \
  } while (0)
