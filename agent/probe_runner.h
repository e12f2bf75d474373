// The one way a probe run happens, whoever asked for it (the schedule or
// `/probe`): one fresh attempt under a deadline, interpreted the same way.
//
// Thread-safety: stateless; run_probe() may run on any number of threads
// (each with its own Probe instance).
#pragma once

#include <atomic>
#include <chrono>

#include "probes/log.h"
#include "probes/probe.h"

namespace pacs {

struct RunOutcome {
  ProbeResult result;  // on failure, reason is never `none`
  double seconds = 0;  // wall time of the run
  std::chrono::system_clock::time_point end;
};

// Runs `probe` (built from `spec`) until `deadline`:
// - an exception becomes a failure with reason `internal` (and an error log);
// - a failure without a reason is a probe bug: reason `internal`;
// - a run that ends more than 1 s after its deadline is logged as an overrun;
// - a failure is logged at debug with its reason and message.
RunOutcome run_probe(Probe& probe, const ProbeSpec& spec, Clock::time_point deadline, const std::atomic<bool>* stop,
                     Logger& log, Transcript* transcript = nullptr);

}  // namespace pacs
