// Cost of one full store round trip, printed (never asserted): the dicom
// store check (C-STORE a fresh canary, C-FIND it back, delete it over
// Orthanc's REST API, count the canary studies) beside the same work done
// by command-line processes (storescu, findscu, curl, findscu), and beside
// the bare storescu + findscu pair — all against one local Orthanc in the
// same run, with fresh UIDs for every object (an archive skips known ones).
// Wall time p50/p99 and the client's CPU time (getrusage of this process,
// wait4 of the children); Orthanc's own CPU is excluded for everyone.
//
//   bench_dicom_store [round_trips=200] [process_round_trips=50]
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
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "probes/dicom/dicom_probe.h"
#include "probes/log.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

pid_t spawn(const std::vector<std::string>& args, const std::string& out = "/dev/null") {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

double cpu_seconds(const rusage& r) {
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

// Runs one child to completion; adds its CPU time. False when it failed.
bool run_child(const std::vector<std::string>& args, double& cpu, const std::string& out = "/dev/null") {
  pid_t pid = spawn(args, out);
  int st = 0;
  rusage ru{};
  if (pid < 0 || ::wait4(pid, &st, 0, &ru) != pid) return false;
  cpu += cpu_seconds(ru);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Figures {
  std::vector<double> wall;  // seconds per round trip
  double cpu = 0;            // seconds, all round trips
  int failures = 0;
};

void row(const char* name, const Figures& f) {
  double n = std::max<double>(1, static_cast<double>(f.wall.size()));
  std::printf("%-44s %6zu %9.2f %9.2f %12.2f %7d\n", name, f.wall.size(), bench::percentile(f.wall, 0.5) * 1e3,
              bench::percentile(f.wall, 0.99) * 1e3, f.cpu / n * 1e3, f.failures);
}

}  // namespace

int main(int argc, char** argv) {
  const int probe_n = argc > 1 ? std::atoi(argv[1]) : 200;
  const int proc_n = argc > 2 ? std::atoi(argv[2]) : 50;
  ::setenv("TCP_NODELAY", "1", 1);  // for every DICOM client and Orthanc's DCMTK too

  pacs::Logger log(pacs::LogLevel::warn);
  pacs::dicom::global_init(log);

  char tmpl[] = "/tmp/bench-dicom-store-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const fs::path dir = tmpl;
  const int dicom_port = bench::free_port(), http_port = bench::free_port();
  std::ofstream(dir / "orthanc.json")
      << "{ \"Name\": \"bench\", \"StorageDirectory\": \"" << (dir / "db").string() << "\", \"IndexDirectory\": \""
      << (dir / "db").string() << "\", \"Plugins\": [], \"HttpPort\": " << http_port
      << ", \"RemoteAccessAllowed\": false, \"AuthenticationEnabled\": false, \"DicomAet\": \"ORTHANC\", "
         "\"DicomPort\": " << dicom_port
      << ", \"DicomAlwaysAllowStore\": true, \"DicomAlwaysAllowFind\": true, \"DicomAlwaysAllowEcho\": true, "
         "\"SaveJobs\": false }\n";
  pid_t orthanc = spawn({"Orthanc", (dir / "orthanc.json").string()});
  if (orthanc < 0) {
    std::fprintf(stderr, "cannot start Orthanc (package orthanc)\n");
    return 1;
  }
  bench::wait_for_port(dicom_port, std::chrono::seconds(30));
  const std::string url = "http://127.0.0.1:" + std::to_string(http_port);

  pacs::dicom::DicomOptions o;
  o.host = "127.0.0.1";
  o.port = dicom_port;
  o.called_ae_title = "ORTHANC";
  o.calling_ae_title = "BENCH";
  o.store = pacs::dicom::StoreOptions{};
  o.store->canary.uid_root = "1.2.826.0.1.3680043.10.999";
  o.store->canary.cleanup.type = pacs::canary::Cleanup::Type::orthanc;
  o.store->canary.cleanup.url = url;
  pacs::dicom::DicomProbe probe_instance(o, pacs::dicom::Check::store);
  auto probe_once = [&] {
    pacs::ProbeContext ctx;
    ctx.deadline = Clock::now() + std::chrono::seconds(10);
    ctx.log = &log;
    return probe_instance.run(ctx).success;
  };
  for (int i = 0; i < 10; ++i) probe_once();  // warm-up

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

  // The same objects for the processes: fresh canaries written as files
  // before the clock starts (file writing is not what is measured).
  std::vector<pacs::canary::Object> objects;
  for (int i = 0; i < 2 * proc_n; ++i) {
    objects.push_back(pacs::canary::make_object(o.store->canary, "bench"));
    std::ofstream(dir / (std::to_string(i) + ".dcm"), std::ios::binary) << objects.back().part10();
  }
  const std::string port = std::to_string(dicom_port);
  auto store_and_find = [&](int i, double& cpu) {
    const auto& u = objects[static_cast<size_t>(i)].uids();
    bool ok = run_child({"storescu", "-aet", "BENCH", "-aec", "ORTHANC", "127.0.0.1", port,
                         (dir / (std::to_string(i) + ".dcm")).string()},
                        cpu);
    ok = ok && run_child({"findscu", "-S", "-aet", "BENCH", "-aec", "ORTHANC", "-k", "QueryRetrieveLevel=IMAGE", "-k",
                          "StudyInstanceUID=" + u.study, "-k", "SeriesInstanceUID=" + u.series, "-k",
                          "SOPInstanceUID=" + u.instance, "127.0.0.1", port},
                         cpu);
    return ok;
  };

  Figures full;
  for (int i = 0; i < proc_n; ++i) {
    const auto& u = objects[static_cast<size_t>(i)].uids();
    auto t0 = Clock::now();
    bool ok = store_and_find(i, full.cpu);
    ok = ok && run_child({"curl", "-sf", "-X", "POST", "--data-binary", u.study, url + "/tools/lookup"}, full.cpu,
                         (dir / "lookup.json").string());
    std::string lookup = slurp(dir / "lookup.json");
    auto at = lookup.find("\"ID\" : \"");
    std::string id = at == std::string::npos ? "" : lookup.substr(at + 8, lookup.find('"', at + 8) - at - 8);
    ok = ok && !id.empty() && run_child({"curl", "-sf", "-X", "DELETE", url + "/studies/" + id}, full.cpu);
    ok = ok && run_child({"findscu", "-S", "-aet", "BENCH", "-aec", "ORTHANC", "-k", "QueryRetrieveLevel=STUDY", "-k",
                          "PatientID=" + o.store->canary.patient_id, "-k", "StudyInstanceUID", "127.0.0.1", port},
                         full.cpu);
    full.wall.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    if (!ok) ++full.failures;
  }

  Figures pair;
  for (int i = proc_n; i < 2 * proc_n; ++i) {
    auto t0 = Clock::now();
    bool ok = store_and_find(i, pair.cpu);
    pair.wall.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    if (!ok) ++pair.failures;
  }

  ::kill(orthanc, SIGTERM);
  ::waitpid(orthanc, nullptr, 0);
  std::error_code ec;
  fs::remove_all(dir, ec);
  pacs::dicom::global_shutdown();

  std::printf("Store round trip against Orthanc on 127.0.0.1:%d (TCP_NODELAY=1), fresh UIDs every object\n",
              dicom_port);
  std::printf("%-44s %6s %9s %9s %12s %7s\n", "client", "runs", "p50 ms", "p99 ms", "CPU ms/run", "failed");
  row("pacs-agent store check (store,find,clean,count)", probe);
  row("storescu+findscu+curl+curl+findscu (5 procs)", full);
  row("storescu+findscu only (2 processes)", pair);
  double p = probe.cpu / std::max<double>(1, static_cast<double>(probe.wall.size()));
  double f = full.cpu / std::max<double>(1, static_cast<double>(full.wall.size()));
  double two = pair.cpu / std::max<double>(1, static_cast<double>(pair.wall.size()));
  std::printf("CPU per round trip: the check uses %.1fx less than the 5 processes, %.1fx less than storescu+findscu\n",
              p > 0 ? f / p : 0, p > 0 ? two / p : 0);
  std::printf("The check's wall time includes the find-back pause only when the first C-FIND misses (Orthanc indexes\n"
              "synchronously: it never does here). Orthanc's CPU is excluded for all clients.\n");
  return 0;
}
