#include "agent/process_metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace pacs {

namespace pm = prometheus;

namespace {
pm::MetricFamily gauge(const char* name, const char* help, double v, pm::MetricType t = pm::MetricType::Gauge) {
  pm::ClientMetric m;
  if (t == pm::MetricType::Counter) m.counter.value = v;
  else m.gauge.value = v;
  return {name, help, t, {m}};
}

double read_boot_time() {
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

double number(std::string_view s) {
  double v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// Read once: /proc/stat is long, the boot time never changes, and every
// /metrics request collects these metrics.
double boot_time() {
  static const double t = read_boot_time();
  return t;
}
}  // namespace

std::vector<pm::MetricFamily> collect_process_metrics() {
  std::vector<pm::MetricFamily> out;
  // One read(2) and a split on spaces: this runs on every /metrics request.
  std::string stat;
  if (int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC); fd >= 0) {
    char buf[1024];
    ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    if (n > 0) stat.assign(buf, static_cast<size_t>(n));
  }
  auto rp = stat.rfind(')');  // comm may contain spaces
  if (rp != std::string::npos) {
    std::vector<std::string_view> f;
    std::string_view rest = std::string_view(stat).substr(rp + 1);
    while (!rest.empty()) {
      auto start = rest.find_first_not_of(" \n");
      if (start == std::string_view::npos) break;
      rest.remove_prefix(start);
      auto end = rest.find_first_of(" \n");
      f.push_back(rest.substr(0, end));
      rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
    }
    // f[0] is field 3 (state); field N is f[N-3].
    if (f.size() > 21) {
      double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
      double page = static_cast<double>(sysconf(_SC_PAGESIZE));
      double cpu = (number(f[14 - 3]) + number(f[15 - 3])) / ticks;
      out.push_back(gauge("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", cpu,
                          pm::MetricType::Counter));
      out.push_back(gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                          boot_time() + number(f[22 - 3]) / ticks));
      out.push_back(gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", number(f[23 - 3])));
      out.push_back(
          gauge("process_resident_memory_bytes", "Resident memory size in bytes.", number(f[24 - 3]) * page));
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
