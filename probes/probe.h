// The probe interface: one attempt at checking one thing, under a deadline.
//
// A probe does not retry, does not sleep between attempts and does not keep
// history: the agent owns the schedule, the deadline, pacs_probe_success /
// _duration_seconds / counters and the latency histogram. A probe only says
// whether it succeeded, why not (a Reason from the closed set below), a
// one-line message, and the gauges that are specific to its kind.
//
// This header is part of the probe framework: it includes nothing of any
// probe kind, and every kind builds on it (see probes/kind.h).
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
  connection_reset,      // connected, then the peer reset or closed it mid-exchange
  association_rejected,  // DICOM A-ASSOCIATE-RJ (see result/source/reason gauges)
  association_aborted,   // DICOM A-ABORT or peer closed the association
  association_timeout,   // no A-ASSOCIATE-AC/RJ before the deadline
  dimse_timeout,         // no DIMSE response before the deadline
  dimse_status,          // DIMSE response with a non-success status
  tls_failure,           // TLS handshake or certificate verification failed
  protocol_error,        // peer spoke, but not the protocol we expected (garbage, bad JSON)
  response_timeout,      // connected, but no (complete) answer before the deadline
  http_status,           // HTTP answer with a non-2xx status code
  negative_ack,          // HL7 acknowledgement AE/AR/CE/CR (application error/reject)
  no_match,              // the query that picks what to check found nothing (e.g. no study to retrieve)
  io_error,              // local I/O failed (ENOENT, EACCES, ...)
  io_timeout,            // local I/O did not return before the deadline (stuck mount)
  stored_not_found,      // the archive accepted a stored object but never showed it to a query
  content_mismatch,      // an object came back from the archive, but not as it was stored
  inbound_timeout,       // the peer did not connect back to the agent (C-MOVE, commitment report) in time
  commitment_failed,     // storage commitment reported the stored object as failed (or left it out)
  stale,                 // the newest of something expected regularly (a backup) is older than allowed
  too_small,             // the newest of something (a backup) is smaller than the configured minimum
  access_not_enforced,   // a peer let in a caller it cannot know (DICOM access-control canary)
  internal,              // bug or unexpected exception inside the agent
};

std::string_view to_string(Reason r) noexcept;
// Every reason except `none`, in declaration order.
const std::vector<Reason>& all_failure_reasons();

// Extra labels on a sample, beyond {probe, target} which the framework adds
// to every sample a probe returns. Values must be bounded (no PHI, no IDs).
using Labels = std::vector<std::pair<std::string, std::string>>;

// One value produced by one probe run. The framework exports it with
// labels {probe, target, <labels...>} until the next run replaces it.
// Usually a gauge describing the last run; a counter (`_total`, monotonic,
// e.g. a running total the kind keeps itself) when `counter` is set.
struct Sample {
  std::string name;  // full metric name, e.g. "pacs_dicom_find_matches"
  std::string help;  // one sentence; identical for every sample of a name
  Labels labels;
  double value = 0;
  bool counter = false;
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
  // A counter the kind keeps across runs (exported with TYPE counter).
  void add_counter(std::string name, std::string help, double value, Labels labels = {}) {
    samples.push_back({std::move(name), std::move(help), std::move(labels), value, true});
  }
};

// A plain-text account of one attempt, step by step, for
// `/probe?debug=true` and a target's last failure: resolve, connect, TLS,
// requests and responses with their status codes, release, counts.
//
// PHI rule: a step names configured things (hosts, ports, AE titles, URLs
// without their query), codes, sizes, counts and timings. Never a dataset, a
// patient attribute, a UID or name received from a peer, or a file name.
//
// Thread-safety: written by the one thread running the attempt, read after.
class Transcript {
 public:
  static constexpr size_t kMaxSteps = 256;  // a runaway loop cannot grow it without bound
  struct Step {
    double at_seconds = 0;  // since the start of the attempt
    std::string step;       // short name: "connect", "A-ASSOCIATE-AC", "GET", ...
    std::string detail;     // one line
  };
  explicit Transcript(Clock::time_point start = Clock::now()) : start_(start) {}
  void add(std::string step, std::string detail);
  const std::vector<Step>& steps() const { return steps_; }
  bool truncated() const { return truncated_; }
  // One line per step: "+   0.412 ms  connect  127.0.0.1:104".
  std::string text() const;

 private:
  Clock::time_point start_;
  std::vector<Step> steps_;
  bool truncated_ = false;
};

struct ProbeContext {
  // The probe must return by this time point. Blocking libraries are bounded
  // with their own timeouts derived from it, plus a watchdog where a library
  // has no timeout of its own (DCMTK sockets, statvfs).
  Clock::time_point deadline;
  // Set when the agent shuts down; long loops (directory walks) check it.
  const std::atomic<bool>* stop = nullptr;
  Logger* log = nullptr;  // never null when called by the agent
  // Set when someone asked for a transcript of this attempt (else null).
  Transcript* transcript = nullptr;

  Duration remaining() const {
    auto r = std::chrono::duration_cast<Duration>(deadline - Clock::now());
    return r.count() > 0 ? r : Duration(0);
  }
  bool expired() const { return Clock::now() >= deadline; }
  bool stopping() const { return stop && stop->load(std::memory_order_relaxed); }
  // True when a transcript is being written: format step details only then.
  bool tracing() const { return transcript != nullptr; }
  void note(std::string step, std::string detail) const;
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
  std::string kind;    // config section / probes/<kind>/: "dicom", "filesystem", "queue"
  std::string check;   // the check's name within its kind: "echo", "filesystem", "directory"
  std::string probe;   // the `probe` label: "dicom_echo", "filesystem", "queue_directory", ...
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

// The one rule for "the same probe" across a reload (see ProbeSpec::fingerprint).
inline bool same_probe(const ProbeSpec& a, const ProbeSpec& b) {
  return a.probe == b.probe && a.target == b.target && a.fingerprint == b.fingerprint;
}

}  // namespace pacs
