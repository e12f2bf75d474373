// C-ECHO cost, printed (never asserted): wall time p50/p99 and CPU time per
// echo for our probe (one association per echo, in process) beside the same
// for one `echoscu` process per echo, both against a local `storescp` run
// with TCP_NODELAY=1 (else Nagle, not the code, dominates the figures).
//
//   bench_dicom_echo [probe_echoes=1000] [echoscu_echoes=200]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "probes/dicom/dicom_probe.h"
#include "probes/log.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

pid_t spawn(const std::vector<std::string>& args, bool quiet) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (quiet) {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = -1;
  // environ already carries TCP_NODELAY=1 (set below, before any spawn).
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

double cpu_seconds(const rusage& r) {
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

struct Figures {
  std::vector<double> wall;  // seconds per echo
  double cpu = 0;            // seconds, all echoes
  int failures = 0;
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void row(const char* name, const Figures& f) {
  double n = static_cast<double>(f.wall.size());
  double cpu_per = f.cpu / n;
  std::printf("%-26s %8zu %10.3f %10.3f %12.1f %14.0f %8d\n", name, f.wall.size(), percentile(f.wall, 0.5) * 1e3,
              percentile(f.wall, 0.99) * 1e3, cpu_per * 1e6, cpu_per > 0 ? 1.0 / cpu_per : 0.0, f.failures);
}

}  // namespace

int main(int argc, char** argv) {
  int probe_n = argc > 1 ? std::atoi(argv[1]) : 1000;
  int echoscu_n = argc > 2 ? std::atoi(argv[2]) : 200;
  ::setenv("TCP_NODELAY", "1", 1);  // for storescp and echoscu too

  pacs::Logger log(pacs::LogLevel::warn);
  pacs::dicom::global_init(log);

  int port = free_port();
  pid_t scp = spawn({"storescp", "--ignore", "-aet", "STORESCP", std::to_string(port)}, true);
  if (scp < 0) {
    std::fprintf(stderr, "cannot start storescp (package dcmtk)\n");
    return 1;
  }
  auto until = Clock::now() + std::chrono::seconds(10);
  while (!port_open(port) && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));

  pacs::dicom::DicomOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.called_ae_title = "STORESCP";
  o.calling_ae_title = "BENCH";
  auto probe_once = [&] {
    pacs::dicom::DicomProbe p(o, pacs::dicom::Check::echo);
    pacs::ProbeContext ctx;
    ctx.deadline = Clock::now() + std::chrono::seconds(5);
    ctx.log = &log;
    return p.run(ctx).success;
  };
  for (int i = 0; i < 20; ++i) probe_once();  // warm-up: first association, page faults

  Figures probe;
  rusage r0{}, r1{};
  getrusage(RUSAGE_SELF, &r0);
  for (int i = 0; i < probe_n; ++i) {
    auto t0 = Clock::now();
    bool ok = probe_once();
    probe.wall.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    if (!ok) ++probe.failures;
  }
  getrusage(RUSAGE_SELF, &r1);
  probe.cpu = cpu_seconds(r1) - cpu_seconds(r0);

  Figures scu;
  for (int i = 0; i < echoscu_n; ++i) {
    auto t0 = Clock::now();
    pid_t pid = spawn({"echoscu", "-aet", "BENCH", "-aec", "STORESCP", "127.0.0.1", std::to_string(port)}, true);
    int st = 0;
    rusage ru{};
    if (pid < 0 || ::wait4(pid, &st, 0, &ru) != pid) {
      ++scu.failures;
      continue;
    }
    scu.wall.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    scu.cpu += cpu_seconds(ru);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ++scu.failures;
  }

  ::kill(scp, SIGTERM);
  ::waitpid(scp, nullptr, 0);
  pacs::dicom::global_shutdown();

  std::printf("C-ECHO against storescp (TCP_NODELAY=1) on 127.0.0.1:%d, one association per echo\n", port);
  std::printf("%-26s %8s %10s %10s %12s %14s %8s\n", "client", "echoes", "p50 ms", "p99 ms", "CPU us/echo",
              "echoes/CPU-s", "failed");
  row("pacs-agent probe", probe);
  row("echoscu (process per echo)", scu);
  double probe_cpu = probe.cpu / static_cast<double>(probe.wall.size());
  double scu_cpu = scu.wall.empty() ? 0 : scu.cpu / static_cast<double>(scu.wall.size());
  double ratio = probe_cpu > 0 ? scu_cpu / probe_cpu : 0;
  std::printf("CPU per echo: probe uses %.1fx less than echoscu (target >= 40x: %s)\n", ratio,
              ratio >= 40 ? "met" : "NOT met");
  std::printf("probe wall p50 %.3f ms (target <= 2 ms: %s)\n", percentile(probe.wall, 0.5) * 1e3,
              percentile(probe.wall, 0.5) <= 0.002 ? "met" : "NOT met");
  std::printf("CPU is the client's only (getrusage self / wait4 child), storescp excluded for both.\n");
  return 0;
}
