#include "probes/probe.h"

#include <cstdio>

namespace pacs {

std::string_view to_string(Reason r) noexcept {
  switch (r) {
    case Reason::none: return "none";
    case Reason::dns_failure: return "dns_failure";
    case Reason::connection_refused: return "connection_refused";
    case Reason::connect_timeout: return "connect_timeout";
    case Reason::connection_reset: return "connection_reset";
    case Reason::association_rejected: return "association_rejected";
    case Reason::association_aborted: return "association_aborted";
    case Reason::association_timeout: return "association_timeout";
    case Reason::dimse_timeout: return "dimse_timeout";
    case Reason::dimse_status: return "dimse_status";
    case Reason::tls_failure: return "tls_failure";
    case Reason::protocol_error: return "protocol_error";
    case Reason::response_timeout: return "response_timeout";
    case Reason::http_status: return "http_status";
    case Reason::negative_ack: return "negative_ack";
    case Reason::no_match: return "no_match";
    case Reason::io_error: return "io_error";
    case Reason::io_timeout: return "io_timeout";
    case Reason::stored_not_found: return "stored_not_found";
    case Reason::content_mismatch: return "content_mismatch";
    case Reason::inbound_timeout: return "inbound_timeout";
    case Reason::commitment_failed: return "commitment_failed";
    case Reason::stale: return "stale";
    case Reason::too_small: return "too_small";
    case Reason::access_not_enforced: return "access_not_enforced";
    case Reason::internal: return "internal";
  }
  return "internal";
}

const std::vector<Reason>& all_failure_reasons() {
  static const std::vector<Reason> all = {
      Reason::dns_failure,          Reason::connection_refused,  Reason::connect_timeout,
      Reason::connection_reset,     Reason::association_rejected, Reason::association_aborted,
      Reason::association_timeout,  Reason::dimse_timeout,       Reason::dimse_status,
      Reason::tls_failure,          Reason::protocol_error,      Reason::response_timeout,
      Reason::http_status,          Reason::negative_ack,        Reason::no_match,
      Reason::io_error,             Reason::io_timeout,          Reason::stored_not_found,
      Reason::content_mismatch,     Reason::inbound_timeout,     Reason::commitment_failed,
      Reason::stale,                Reason::too_small,           Reason::access_not_enforced,
      Reason::internal,
  };
  return all;
}

void Transcript::add(std::string step, std::string detail) {
  if (steps_.size() >= kMaxSteps) {
    truncated_ = true;
    return;
  }
  for (auto* s : {&step, &detail})
    for (auto& c : *s)
      if (c == '\n' || c == '\r') c = ' ';  // one line per step, whatever a library said
  double at = std::chrono::duration<double>(Clock::now() - start_).count();
  steps_.push_back({at, std::move(step), std::move(detail)});
}

std::string Transcript::text() const {
  std::string out;
  char buf[48];
  for (const auto& s : steps_) {
    std::snprintf(buf, sizeof buf, "+%10.3f ms  ", s.at_seconds * 1000);
    out += buf;
    out += s.step;
    if (!s.detail.empty()) out += "  " + s.detail;
    out += '\n';
  }
  if (truncated_) out += "(transcript truncated after " + std::to_string(kMaxSteps) + " steps)\n";
  return out;
}

void ProbeContext::note(std::string step, std::string detail) const {
  if (transcript) transcript->add(std::move(step), std::move(detail));
}

}  // namespace pacs
