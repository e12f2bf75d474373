// DICOMweb and HL7 probe cost, printed (never asserted): wall time p50/p99 per
// run of the probe beside an anchor doing the same exchange with the least
// code possible, against the same real peer in the same run:
//   hl7   Hl7Probe (curl connect, MLLP, ACK parsing) vs a blocking socket that
//         sends the same framed message and reads to the end block;
//         peer: node-hl7-server (npm, installed by the hl7 tests' CMake step)
//   qido  QidoProbe (curl, basic auth, JSON parse) vs one Beast GET of the same
//         URL with the same Authorization header; peer: Orthanc + DICOMweb
//   wado  WadoProbe (QIDO limit=1 + metadata) vs the two Beast GETs
//   stow  StowProbe (POST, find back, cleanup, count), no anchor
//
//   bench_interfaces [runs=200]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "probes/dicomweb/dicomweb.h"
#include "probes/hl7/hl7.h"
#include "probes/log.h"
#include "tests/support/support.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct Stats {
  double p50 = 0, p99 = 0;
  int failures = 0;
};

Stats measure(int n, const std::function<bool()>& op) {
  std::vector<double> ms;
  Stats s;
  for (int i = 0; i < n; ++i) {
    auto t = Clock::now();
    if (!op()) ++s.failures;
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
  }
  std::sort(ms.begin(), ms.end());
  s.p50 = ms[ms.size() / 2];
  s.p99 = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  return s;
}

void row(const char* what, const Stats& s) {
  std::printf("  %-46s p50 %7.2f ms   p99 %7.2f ms   failed %d\n", what, s.p50, s.p99, s.failures);
}

pacs::ProbeContext ctx(std::chrono::milliseconds t) {
  pacs::ProbeContext c;
  c.deadline = pacs::Clock::now() + t;
  return c;
}

// The anchor for HL7: connect, send the framed message, read to 0x1C 0x0D.
bool raw_mllp(int port, const std::string& frame) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
            ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(frame.size());
  std::string in;
  char buf[4096];
  while (ok && in.find("\x1c\r") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) ok = false;
    else in.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return ok && in.find("MSA|AA|") != std::string::npos;
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::atoi(argv[1]) : 200;
  pacs::Logger log(pacs::LogLevel::error);
  pacs::hl7::kind().init(log);
  pacs::dicomweb::kind().init(log);
  pacs::test::TempDir dir;
  std::printf("bench_interfaces: %d runs each, real peers on 127.0.0.1\n", runs);

  // ---- HL7 -------------------------------------------------------------------
  const std::string node_modules = PACS_HL7_NODE_MODULES;
  int port = pacs::test::free_port();
  pacs::test::Process peer({"node", std::string(PACS_SOURCE_DIR) + "/probes/hl7/tests/mllp_peer.js", std::to_string(port)},
                           dir / "mllp.log", {{"NODE_PATH", node_modules}});
  if (!pacs::test::wait_for_port(port, 20s)) {
    std::printf("hl7: node-hl7-server did not start (build the hl7 tests first: it is installed by their CMake step)\n%s\n",
                peer.log().c_str());
  } else {
    pacs::hl7::Options o;
    o.host = "127.0.0.1";
    o.port = port;
    o.receiving_application = "AA";
    o.message_type = "ADT^A08";
    const std::string frame = pacs::hl7::mllp_frame(pacs::hl7::build_message(o, "PABENCH", "20240101000000"));
    std::printf("hl7 (node-hl7-server 2.5.0, ADT^A08, AA)\n");
    row("anchor: blocking socket, same frame", measure(runs, [&] { return raw_mllp(port, frame); }));
    row("Hl7Probe::run", measure(runs, [&] { return pacs::hl7::Hl7Probe(o).run(ctx(5s)).success; }));
    double rtt = 0;
    for (int i = 0; i < 20; ++i) {
      auto r = pacs::hl7::Hl7Probe(o).run(ctx(5s));
      for (const auto& s : r.samples)
        if (s.name == "pacs_hl7_round_trip_seconds") rtt += s.value / 20;
    }
    std::printf("  %-46s %7.2f ms (mean of 20)\n", "pacs_hl7_round_trip_seconds", rtt * 1000);
  }

  // ---- DICOMweb ----------------------------------------------------------------
  if (pacs::test::Orthanc::dicomweb_plugin().empty()) {
    std::printf("dicomweb: orthanc-dicomweb is not installed\n");
    return 0;
  }
  pacs::test::Orthanc::Options oo;
  oo.plugins = {pacs::test::Orthanc::dicomweb_plugin()};
  oo.users = {{"monitor", "bench-pw"}};
  oo.extra_json = {R"("DicomWeb": { "Enable": true, "Root": "/dicom-web/" })"};
  pacs::test::Orthanc orthanc(oo);
  if (!orthanc.start()) {
    std::printf("dicomweb: Orthanc did not start\n%s\n", orthanc.log().c_str());
    return 0;
  }
  char today[16];
  std::time_t now = std::time(nullptr);
  std::strftime(today, sizeof today, "%Y%m%d", std::localtime(&now));
  for (int i = 0; i < 20; ++i) {
    orthanc.upload(pacs::test::make_dicom_file(dir / ("s" + std::to_string(i) + ".dcm"), "BENCH^" + std::to_string(i),
                                               "B" + std::to_string(i), today));
  }
  pacs::dicomweb::Target t;
  t.url = orthanc.url() + "/dicom-web";
  t.http.auth.type = pacs::http::Auth::Type::basic;
  t.http.auth.username = "monitor";
  t.http.auth.password_file = dir.write("pw", "bench-pw\n").string();
  const std::map<std::string, std::string> auth = {{"Authorization", "Basic " + pacs::test::base64("monitor:bench-pw")},
                                                   {"Accept", "application/dicom+json"}};
  const std::string qido = "/dicom-web/studies?StudyDate=" + std::string(today);
  std::printf("dicomweb (Orthanc 1.10 + DICOMweb plugin 1.7, basic auth, 20 studies today)\n");
  row("anchor: Beast GET QIDO-RS", measure(runs, [&] {
        return pacs::test::http_request(orthanc.http_port(), "GET", qido, auth).status == 200;
      }));
  row("QidoProbe::run", measure(runs, [&] {
        return pacs::dicomweb::QidoProbe(t, {{"StudyDate", "today"}}).run(ctx(5s)).success;
      }));
  auto first = nlohmann::json::parse(pacs::test::http_request(orthanc.http_port(), "GET", qido, auth).body);
  const std::string uid = first[0]["0020000D"]["Value"][0];
  row("anchor: Beast GET limit=1 + GET metadata", measure(runs, [&] {
        return pacs::test::http_request(orthanc.http_port(), "GET", "/dicom-web/studies?limit=1", auth).status == 200 &&
               pacs::test::http_request(orthanc.http_port(), "GET", "/dicom-web/studies/" + uid + "/metadata", auth)
                       .status == 200;
      }));
  row("WadoProbe::run", measure(runs, [&] { return pacs::dicomweb::WadoProbe(t, {}).run(ctx(5s)).success; }));
  pacs::canary::Settings c;
  c.uid_root = "1.2.826.0.1.3680043.10.999";
  c.cleanup.type = pacs::canary::Cleanup::Type::orthanc;
  c.cleanup.url = orthanc.url();
  c.cleanup.http = t.http;
  double findable = 0;
  int stow_runs = std::max(1, runs / 10);
  auto s = measure(stow_runs, [&] {
    auto r = pacs::dicomweb::StowProbe(t, c).run(ctx(20s));
    for (const auto& x : r.samples)
      if (x.name == "pacs_dicomweb_stow_findable_seconds") findable += x.value / stow_runs;
    return r.success;
  });
  row(("StowProbe::run (" + std::to_string(stow_runs) + " runs)").c_str(), s);
  std::printf("  %-46s %7.2f ms (mean)\n", "pacs_dicomweb_stow_findable_seconds", findable * 1000);
  pacs::dicomweb::kind().shutdown();
  pacs::hl7::kind().shutdown();
  return 0;
}
