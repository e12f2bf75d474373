// bench_spool_scan: the queue_directory scan of a 100,000-file spool beside
// `find DIR -type f | wc -l` on the same folder. Prints medians; asserts
// nothing about time (figures, not pass/fail).
//
//   bench_spool_scan [files=100000] [repetitions=7] [dir]
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "probes/queue/queue.h"

namespace fs = std::filesystem;
using Ms = std::chrono::duration<double, std::milli>;

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Runs `sh -c cmd`, returns stdout.
static std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  ::pclose(p);
  return out;
}

int main(int argc, char** argv) {
  const int files = argc > 1 ? std::atoi(argv[1]) : 100000;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 7;
  fs::path dir = argc > 3 ? fs::path(argv[3]) : fs::temp_directory_path() / ("pacs-bench-spool-" + std::to_string(::getpid()));
  const bool own_dir = argc <= 3;
  fs::create_directories(dir);

  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < files; ++i) {
    auto name = dir / ("study-" + std::to_string(i) + ".dcm");
    int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      std::perror(name.c_str());
      return 1;
    }
    char byte = 'x';
    if (::write(fd, &byte, 1) != 1) return 1;
    ::close(fd);
  }
  double create_ms = Ms(std::chrono::steady_clock::now() - t0).count();

  pacs::queue::SpoolOptions opts;
  opts.path = dir.string();
  pacs::ProbeContext ctx;
  std::vector<double> scan_ms, find_ms, find_stat_ms;
  std::uint64_t items = 0;
  std::string find_count;
  for (int r = 0; r < reps; ++r) {
    ctx.deadline = pacs::Clock::now() + std::chrono::minutes(5);
    auto s = std::chrono::steady_clock::now();
    auto scan = pacs::queue::scan_spool(opts, ctx);
    scan_ms.push_back(Ms(std::chrono::steady_clock::now() - s).count());
    items = scan.items;

    s = std::chrono::steady_clock::now();
    find_count = sh("find '" + dir.string() + "' -type f | wc -l");
    find_ms.push_back(Ms(std::chrono::steady_clock::now() - s).count());

    // The same work our scan does: stat every file for its size and mtime.
    s = std::chrono::steady_clock::now();
    sh("find '" + dir.string() + "' -type f -printf '%s %T@\\n' | wc -l");
    find_stat_ms.push_back(Ms(std::chrono::steady_clock::now() - s).count());
  }
  while (!find_count.empty() && (find_count.back() == '\n' || find_count.back() == ' ')) find_count.pop_back();

  std::printf("bench_spool_scan: %d files in %s (created in %.0f ms), %d repetitions, medians\n", files,
              dir.c_str(), create_ms, reps);
  std::printf("| method                              | median ms | min ms | items  |\n");
  std::printf("|-------------------------------------|-----------|--------|--------|\n");
  std::printf("| queue_directory scan (readdir+fstatat, items+bytes+oldest) | %9.1f | %6.1f | %6llu |\n",
              median(scan_ms), *std::min_element(scan_ms.begin(), scan_ms.end()),
              static_cast<unsigned long long>(items));
  std::printf("| sh -c 'find DIR -type f | wc -l'    | %9.1f | %6.1f | %6s |\n", median(find_ms),
              *std::min_element(find_ms.begin(), find_ms.end()), find_count.c_str());
  std::printf("| sh -c 'find DIR -type f -printf \"%%s %%T@\" | wc -l' (stats like us) | %9.1f | %6.1f | %6s |\n",
              median(find_stat_ms), *std::min_element(find_stat_ms.begin(), find_stat_ms.end()), find_count.c_str());
  std::printf("ratio scan/find: %.2f   ratio scan/find-with-stat: %.2f\n", median(scan_ms) / median(find_ms),
              median(scan_ms) / median(find_stat_ms));
  if (own_dir) fs::remove_all(dir);
  return items == static_cast<std::uint64_t>(files) ? 0 : 1;
}
