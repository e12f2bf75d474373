#include "agent/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace pacs {

namespace pm = prometheus;

namespace {
pm::MetricFamily gauge(const char* name, const char* help, double v, pm::MetricType t = pm::MetricType::Gauge) {
  pm::ClientMetric m;
  if (t == pm::MetricType::Counter) m.counter.value = v;
  else m.gauge.value = v;
  return {name, help, t, {m}};
}

double boot_time() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double v;
      in >> v;
      return v;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}
}  // namespace

std::vector<pm::MetricFamily> collect_process_metrics() {
  std::vector<pm::MetricFamily> out;
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto rp = stat.rfind(')');  // comm may contain spaces
  if (rp != std::string::npos) {
    std::istringstream ss(stat.substr(rp + 2));
    std::vector<std::string> f;
    std::string tok;
    while (ss >> tok) f.push_back(tok);
    // f[0] is field 3 (state); field N is f[N-3].
    if (f.size() > 21) {
      double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
      double page = static_cast<double>(sysconf(_SC_PAGESIZE));
      double cpu = (std::stod(f[14 - 3]) + std::stod(f[15 - 3])) / ticks;
      out.push_back(gauge("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", cpu,
                          pm::MetricType::Counter));
      out.push_back(gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                          boot_time() + std::stod(f[22 - 3]) / ticks));
      out.push_back(gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", std::stod(f[23 - 3])));
      out.push_back(
          gauge("process_resident_memory_bytes", "Resident memory size in bytes.", std::stod(f[24 - 3]) * page));
    }
  }
  int fds = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++fds;
    closedir(d);
    --fds;  // the directory stream itself
  }
  out.push_back(gauge("process_open_fds", "Number of open file descriptors.", fds));
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    out.push_back(gauge("process_max_fds", "Maximum number of open file descriptors.", static_cast<double>(rl.rlim_cur)));
  }
  return out;
}

}  // namespace pacs
