// The probe interface: one attempt at checking one thing, under a deadline.
//
// A probe does not retry, does not sleep between attempts and does not keep
// history: the framework (agent/scheduler, agent/result_store) owns the
// schedule, the deadline, pacs_probe_success / _duration_seconds / counters
// and the latency histogram. A probe only says whether it succeeded, why not
// (a Reason from the closed set below), a one-line message, and the gauges
// that are specific to its kind.
//
// PHI rule: nothing a probe returns (message, samples, label values) may
// contain patient names, IDs, accession numbers or study UIDs. Counts and
// timings only.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pacs {

class Logger;

using Clock = std::chrono::steady_clock;
using Duration = std::chrono::milliseconds;

// Closed set of failure reasons. Exported as the `reason` label of
// pacs_probe_failures_total; documented in docs/metrics.md. Adding one is a
// contract change (alerts and dashboards match on these strings).
enum class Reason {
  none,                  // success
  dns_failure,           // host name did not resolve (in time)
  connection_refused,    // TCP RST / nothing listening / host unreachable
  connect_timeout,       // TCP connect did not complete before the deadline
  association_rejected,  // DICOM A-ASSOCIATE-RJ (see result/source/reason gauges)
  association_aborted,   // DICOM A-ABORT or peer closed the association
  association_timeout,   // no A-ASSOCIATE-AC/RJ before the deadline
  dimse_timeout,         // no DIMSE response before the deadline
  dimse_status,          // DIMSE response with a non-success status
  tls_failure,           // TLS handshake or certificate verification failed
  protocol_error,        // peer spoke, but not the protocol we expected (garbage, bad JSON)
  http_status,           // HTTP answer with a non-2xx status code
  io_error,              // local I/O failed (ENOENT, EACCES, ...)
  io_timeout,            // local I/O did not return before the deadline (stuck mount)
  internal,              // bug or unexpected exception inside the agent
};

std::string_view to_string(Reason r) noexcept;
// Every reason except `none`, in declaration order.
const std::vector<Reason>& all_failure_reasons();

// Extra labels on a sample, beyond {probe, target} which the framework adds
// to every sample a probe returns. Values must be bounded (no PHI, no IDs).
using Labels = std::vector<std::pair<std::string, std::string>>;

// One gauge value produced by one probe run. The framework exports it with
// labels {probe, target, <labels...>} until the next run replaces it.
struct Sample {
  std::string name;  // full metric name, e.g. "pacs_dicom_find_matches"
  std::string help;  // one sentence; identical for every sample of a name
  Labels labels;
  double value = 0;
};

struct ProbeResult {
  bool success = false;
  Reason reason = Reason::internal;
  std::string message;  // one line, human readable, no PHI
  std::vector<Sample> samples;

  static ProbeResult ok(std::string message = {}) {
    return {true, Reason::none, std::move(message), {}};
  }
  static ProbeResult fail(Reason r, std::string message) {
    return {false, r, std::move(message), {}};
  }
  void add(std::string name, std::string help, double value, Labels labels = {}) {
    samples.push_back({std::move(name), std::move(help), std::move(labels), value});
  }
};

struct ProbeContext {
  // The probe must return by this time point. Blocking libraries are bounded
  // with their own timeouts derived from it, plus a watchdog where a library
  // has no timeout of its own (DCMTK sockets, statvfs).
  Clock::time_point deadline;
  // Set when the agent shuts down; long loops (directory walks) check it.
  const std::atomic<bool>* stop = nullptr;
  Logger* log = nullptr;  // never null when called by the agent

  Duration remaining() const {
    auto r = std::chrono::duration_cast<Duration>(deadline - Clock::now());
    return r.count() > 0 ? r : Duration(0);
  }
  bool expired() const { return Clock::now() >= deadline; }
  bool stopping() const { return stop && stop->load(std::memory_order_relaxed); }
};

// Thread-safety: a Probe instance is run by at most one thread at a time
// (the scheduler never stacks runs of the same probe), but an on-demand
// /probe request may run a *separate instance* built from the same spec
// concurrently. Probes must therefore not share mutable state across
// instances except through their own synchronised objects.
class Probe {
 public:
  virtual ~Probe() = default;
  virtual ProbeResult run(const ProbeContext& ctx) = 0;
};

// What the config produces for every check of every configured target: the
// scheduler runs `make()`'s probe every `interval` with `timeout`.
struct ProbeSpec {
  std::string probe;   // check kind: "dicom_echo", "filesystem", "queue_directory", ...
  std::string target;  // configured name (the `name` key)
  Duration interval{};
  Duration timeout{};
  // Reasons this probe can produce; their failure counters start at 0.
  std::vector<Reason> reasons;
  // Builds a fresh probe instance. Called once for the scheduled instance and
  // once per on-demand /probe request. Must be cheap and must not do I/O.
  std::function<std::unique_ptr<Probe>()> make;
  // Canonical text of the settings that define this probe. Two specs with
  // equal (probe, target, fingerprint) are "the same probe" across a reload:
  // its counters and schedule phase carry over.
  std::string fingerprint;
};

}  // namespace pacs
