#include "agent/probe_runner.h"

#include <exception>
#include <string>

namespace pacs {

RunOutcome run_probe(Probe& probe, const ProbeSpec& spec, Clock::time_point deadline, const std::atomic<bool>* stop,
                     Logger& log, Transcript* transcript) {
  ProbeContext ctx;
  ctx.deadline = deadline;
  ctx.stop = stop;
  ctx.log = &log;
  ctx.transcript = transcript;
  RunOutcome out;
  auto start = Clock::now();
  try {
    out.result = probe.run(ctx);
  } catch (const std::exception& e) {
    log.error("probe threw", {{"probe", spec.probe}, {"target", spec.target}, {"err", e.what()}});
    out.result = ProbeResult::fail(Reason::internal, std::string("internal error: ") + e.what());
  } catch (...) {
    log.error("probe threw", {{"probe", spec.probe}, {"target", spec.target}, {"err", "unknown exception"}});
    out.result = ProbeResult::fail(Reason::internal, "internal error: unknown exception");
  }
  auto end = Clock::now();
  out.end = std::chrono::system_clock::now();
  out.seconds = std::chrono::duration<double>(end - start).count();
  ProbeResult& r = out.result;
  if (r.success) {
    r.reason = Reason::none;
  } else if (r.reason == Reason::none) {
    r.reason = Reason::internal;  // a probe bug, not a success
    if (r.message.empty()) r.message = "internal error: the check failed without a reason";
  }
  if (end > deadline + std::chrono::seconds(1)) {
    log.warn("probe overran its deadline",
             {{"probe", spec.probe}, {"target", spec.target}, {"duration_seconds", std::to_string(out.seconds)}});
  }
  if (!r.success) {
    log.debug("probe failed",
              {{"probe", spec.probe}, {"target", spec.target}, {"reason", to_string(r.reason)}, {"msg", r.message}});
  }
  if (transcript) {
    transcript->add(r.success ? "result" : "failed",
                    r.success ? "success" : std::string(to_string(r.reason)) + ": " + r.message);
  }
  return out;
}

}  // namespace pacs
