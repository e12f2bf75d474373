#include "tests/support/support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

extern char** environ;

namespace pacs::test {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  fs::path base = fs::temp_directory_path();
  for (int i = 0; i < 100; ++i) {
    fs::path p = base / ("pacs-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                         std::to_string(rd() % 100000));
    std::error_code ec;
    if (fs::create_directory(p, ec)) {
      path_ = p;
      return;
    }
  }
  throw std::runtime_error("cannot create temp dir");
}

TempDir::~TempDir() {
  std::error_code ec;
  // Make everything writable again (tests chmod 000 to provoke EACCES).
  for (auto it = fs::recursive_directory_iterator(path_, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  }
  fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

fs::path TempDir::write(const std::string& name, const std::string& content) const {
  fs::path p = path_ / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
  return p;
}

// A port from bind(0) comes from the kernel's ephemeral range, where every outgoing
// connection on the machine (this test's or a parallel one's) draws its source port:
// between our close() and the peer's bind() one of them may take it ("address already in
// use"). So pick at random below the ephemeral range, where the kernel never hands out
// source ports, and check by binding. Same algorithm as tests/support/ports.py.
int free_port() {
  auto try_bind = [](int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    int got = -1;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      socklen_t len = sizeof a;
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
      got = ntohs(a.sin_port);
    }
    ::close(fd);
    return got;
  };
  int ephemeral_low = 32768;
  if (std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range"); f) f >> ephemeral_low;
  constexpr int kLow = 20000;
  if (ephemeral_low - 1 - kLow >= 1000) {
    static std::mutex mu;
    static std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> pick(kLow, ephemeral_low - 1);
    for (int i = 0; i < 500; ++i) {
      int port;
      {
        std::lock_guard lk(mu);
        port = pick(rng);
      }
      if (try_bind(port) == port) return port;
    }
  }
  int port = try_bind(0);  // an unusual ephemeral range: let the kernel choose
  if (port <= 0) throw std::runtime_error("bind(0) failed");
  return port;
}

bool wait_for_port(int port, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::close(fd);
    if (rc == 0) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::optional<std::string> find_program(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    return std::nullopt;
  }
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin";
  path += ":/usr/sbin:/sbin:/usr/local/sbin";
  std::stringstream ss(path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return std::nullopt;
}

std::optional<double> metric_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return std::nullopt;
}

std::string run_as_nobody(const std::function<std::string()>& fn) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(pipefd[0]);
    std::string out;
    if (::getuid() == 0 && (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)) {
      out = "<could not drop privileges>";
    } else {
      out = fn();
    }
    auto n = ::write(pipefd[1], out.data(), out.size());
    ::_exit(n == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  ::close(pipefd[1]);
  std::string got;
  char buf[512];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return got;
}

std::optional<std::string> missing_peer(const std::string& program) {
  if (find_program(program)) return std::nullopt;
  return "peer program '" + program + "' not found (install it: ./scripts/test does)";
}

Process::Process(std::vector<std::string> argv, fs::path log_file, std::map<std::string, std::string> extra_env,
                 std::optional<fs::path> cwd)
    : log_file_(std::move(log_file)) {
  auto exe = find_program(argv.at(0));
  if (!exe) throw std::runtime_error("program not found: " + argv[0]);
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto k = kv.substr(0, kv.find('='));
    if (!extra_env.count(k)) env.push_back(kv);
  }
  for (auto& [k, v] : extra_env) env.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    if (cwd && ::chdir(cwd->c_str()) != 0) _exit(126);
    ::setpgid(0, 0);  // own process group: stop() also ends children (storescp --fork)
    // If the test process dies without running destructors (a sanitizer
    // abort, a crash), its peers must not live on. Tests create peers on
    // their main thread, which is the thread PDEATHSIG watches.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) _exit(126);  // parent already gone
    ::execve(exe->c_str(), cargv.data(), cenv.data());
    _exit(127);
  }
  pid_ = pid;
}

Process::~Process() { stop(); }

bool Process::running() {
  if (pid_ <= 0) return false;
  int st;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    pid_ = -1;
    return false;
  }
  return true;
}

void Process::kill_signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

std::optional<int> Process::wait_exit(std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
  if (status_ == -1) return std::nullopt;
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  return 128 + WTERMSIG(status_);
}

int Process::stop(int sig, std::chrono::milliseconds grace) {
  if (pid_ <= 0) return status_;
  pid_t pid = pid_;
  ::kill(pid, sig);
  if (!wait_exit(grace)) {
    ::kill(pid, SIGKILL);
    wait_exit(5s);
  }
  ::kill(-pid, SIGKILL);  // stray children in its process group
  return status_;
}

std::string Process::log() const {
  std::ifstream in(log_file_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

HttpResponse http_request(int port, const std::string& method, const std::string& target,
                          const std::map<std::string, std::string>& headers, const std::string& body,
                          std::chrono::milliseconds timeout) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  namespace net = boost::asio;
  HttpResponse out;
  try {
    net::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(timeout);
    stream.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    if (method == "HEAD") parser.skip(true);  // Content-Length without a body
    http::read(stream, buf, parser);
    auto& res = parser.get();
    out.status = static_cast<int>(res.result_int());
    for (const auto& f : res) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      out.headers[name] = std::string(f.value());
    }
    out.body = res.body();
    beast::error_code ec;
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

int run_command(const std::vector<std::string>& argv, std::string* output, std::chrono::milliseconds timeout) {
  TempDir tmp;
  auto logf = tmp / "out.log";
  Process p(argv, logf);
  auto rc = p.wait_exit(timeout);
  if (!rc) {
    p.stop(SIGKILL);
    if (output) *output = p.log() + "\n[timed out]";
    return -1;
  }
  if (output) *output = p.log();
  return *rc;
}

Orthanc::Orthanc(Options opts) : opts_(std::move(opts)), dicom_port_(free_port()), http_port_(free_port()) {
  while (http_port_ == dicom_port_) http_port_ = free_port();
  write_config();
}

void Orthanc::write_config() {
  std::ostringstream js;
  bool first = true;
  js << "{\n  \"Name\": \"PacsAgentTestOrthanc\",\n"
     << "  \"StorageDirectory\": \"" << (dir_.path() / "db").string() << "\",\n"
     << "  \"IndexDirectory\": \"" << (dir_.path() / "db").string() << "\",\n"
     << "  \"Plugins\": [";
  for (size_t i = 0; i < opts_.plugins.size(); ++i) js << (i ? ", " : "") << "\"" << opts_.plugins[i] << "\"";
  js << "],\n  \"HttpPort\": " << http_port_ << ",\n"
     << "  \"RemoteAccessAllowed\": false,\n  \"AuthenticationEnabled\": "
     << (opts_.users.empty() ? "false" : "true") << ",\n"
     << "  \"RegisteredUsers\": {";
  first = true;
  for (const auto& [user, password] : opts_.users) {
    js << (first ? "" : ",") << "\"" << user << "\": \"" << password << "\"";
    first = false;
  }
  js << "},\n"
     << "  \"DicomAet\": \"" << opts_.aet << "\",\n  \"DicomPort\": " << dicom_port_ << ",\n"
     << "  \"DicomCheckCalledAet\": " << (opts_.check_called_aet ? "true" : "false") << ",\n"
     << "  \"DicomAlwaysAllowEcho\": true,\n  \"DicomAlwaysAllowStore\": true,\n"
     << "  \"DicomAlwaysAllowFind\": true,\n  \"DicomAlwaysAllowFindWorklist\": true,\n"
     << "  \"DicomAlwaysAllowGet\": true,\n  \"DicomAlwaysAllowMove\": true,\n"
     << "  \"DicomScuTimeout\": 2,\n  \"DicomAssociationCloseDelay\": 0,\n"
     << "  \"MetricsEnabled\": true,\n  \"SaveJobs\": false,\n  \"StableAge\": 1,\n"
     << "  \"DicomModalities\": {";
  first = true;
  for (const auto& [name, m] : opts_.modalities) {
    js << (first ? "" : ",") << "\n    \"" << name << "\": [\"" << std::get<0>(m) << "\", \"" << std::get<1>(m)
       << "\", " << std::get<2>(m) << "]";
    first = false;
  }
  js << "\n  }";
  for (const auto& e : opts_.extra_json) js << ",\n  " << e;
  js << "\n}\n";
  dir_.write("orthanc.json", js.str());
}

Orthanc::~Orthanc() { stop(); }

bool Orthanc::start() {
  // free_port() cannot reserve a port: on a busy machine another process may
  // take it before Orthanc binds. Then (and only then) pick new ports.
  for (int attempt = 0; attempt < 3; ++attempt) {
    stop();
    proc_ = std::make_unique<Process>(std::vector<std::string>{"Orthanc", (dir_.path() / "orthanc.json").string()},
                                      dir_.path() / "orthanc.log");
    auto end = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < end && proc_->running()) {
      auto r = http_request(http_port_, "GET", "/system", auth_header(), {}, 2s);
      // 401: Orthanc is up with AuthenticationEnabled (for tests that set no users here
      // and send their own credentials).
      if ((r.status == 200 || r.status == 401) && wait_for_port(dicom_port_, 100ms)) return true;
      std::this_thread::sleep_for(50ms);
    }
    if (proc_->running() || proc_->log().find("already in use") == std::string::npos) return false;
    dicom_port_ = free_port();
    do http_port_ = free_port();
    while (http_port_ == dicom_port_);
    write_config();
  }
  return false;
}

void Orthanc::stop() {
  if (proc_) {
    proc_->stop();
    proc_.reset();
  }
}

int Orthanc::upload(const fs::path& dicom_file) {
  std::ifstream in(dicom_file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  auto headers = auth_header();
  headers["Content-Type"] = "application/dicom";
  return http_request(http_port_, "POST", "/instances", headers, ss.str()).status;
}

HttpResponse Orthanc::rest(const std::string& method, const std::string& target, const std::string& body) {
  return http_request(http_port_, method, target, auth_header(), body);
}

std::map<std::string, std::string> Orthanc::auth_header() const {
  if (opts_.users.empty()) return {};
  const auto& [user, password] = *opts_.users.begin();
  return {{"Authorization", "Basic " + base64(user + ":" + password)}};
}

std::string Orthanc::dicomweb_plugin() {
  for (const char* p : {"/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so.1.7"}) {
    if (fs::exists(p)) return p;
  }
  return {};
}

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

std::string Orthanc::log() const {
  std::ifstream in(dir_.path() / "orthanc.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path make_dicom_file(const fs::path& out, const DicomFileSpec& spec) {
  std::ostringstream d;
  d << "(0008,0016) UI =SecondaryCaptureImageStorage\n"
    << "(0008,0020) DA [" << spec.study_date << "]\n"
    << "(0008,0030) TM [" << spec.study_time << "]\n"
    << "(0008,0050) SH [ACC" << spec.patient_id << "]\n"
    << "(0008,0060) CS [" << spec.modality << "]\n"
    << "(0010,0010) PN [" << spec.patient_name << "]\n"
    << "(0010,0020) LO [" << spec.patient_id << "]\n";
  if (!spec.study_uid.empty()) d << "(0020,000d) UI [" << spec.study_uid << "]\n";
  if (!spec.series_uid.empty()) d << "(0020,000e) UI [" << spec.series_uid << "]\n";
  d << "(0020,0010) SH [1]\n(0020,0011) IS [1]\n(0020,0013) IS [" << spec.instance_number << "]\n"
    << "(0028,0002) US 1\n(0028,0004) CS [MONOCHROME2]\n(0028,0010) US 8\n(0028,0011) US 8\n"
    << "(0028,0100) US 8\n(0028,0101) US 8\n(0028,0102) US 7\n(0028,0103) US 0\n"
    << "(7fe0,0010) OB ";
  for (int i = 0; i < 64; ++i) d << (i ? "\\" : "") << "0" << (i % 8);
  d << "\n";
  fs::path dump = out;
  dump += ".dump";
  std::ofstream(dump) << d.str();
  std::string output;
  // +Ug generates only the UIDs the dump does not set.
  int rc = run_command({"dump2dcm", "+Ug", "+te", dump.string(), out.string()}, &output);
  fs::remove(dump);
  if (rc != 0) throw std::runtime_error("dump2dcm failed: " + output);
  return out;
}

fs::path make_dicom_file(const fs::path& out, const std::string& patient_name, const std::string& patient_id,
                         const std::string& study_date, const std::string& modality) {
  DicomFileSpec spec;
  spec.patient_name = patient_name;
  spec.patient_id = patient_id;
  spec.study_date = study_date;
  spec.modality = modality;
  return make_dicom_file(out, spec);
}

}  // namespace pacs::test
