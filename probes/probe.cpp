#include "probes/probe.h"

namespace pacs {

std::string_view to_string(Reason r) noexcept {
  switch (r) {
    case Reason::none: return "none";
    case Reason::dns_failure: return "dns_failure";
    case Reason::connection_refused: return "connection_refused";
    case Reason::connect_timeout: return "connect_timeout";
    case Reason::association_rejected: return "association_rejected";
    case Reason::association_aborted: return "association_aborted";
    case Reason::association_timeout: return "association_timeout";
    case Reason::dimse_timeout: return "dimse_timeout";
    case Reason::dimse_status: return "dimse_status";
    case Reason::tls_failure: return "tls_failure";
    case Reason::protocol_error: return "protocol_error";
    case Reason::http_status: return "http_status";
    case Reason::io_error: return "io_error";
    case Reason::io_timeout: return "io_timeout";
    case Reason::internal: return "internal";
  }
  return "internal";
}

const std::vector<Reason>& all_failure_reasons() {
  static const std::vector<Reason> all = {
      Reason::dns_failure,         Reason::connection_refused,  Reason::connect_timeout,
      Reason::association_rejected, Reason::association_aborted, Reason::association_timeout,
      Reason::dimse_timeout,       Reason::dimse_status,        Reason::tls_failure,
      Reason::protocol_error,      Reason::http_status,         Reason::io_error,
      Reason::io_timeout,          Reason::internal,
  };
  return all;
}

}  // namespace pacs
