// A raw byte stream over TCP, optionally TLS, opened by libcurl for
// protocols that are not HTTP (HL7 v2 over MLLP). curl does what it does for
// the HTTP client: resolves the host name within the deadline, connects,
// does the TLS handshake with the same `tls = {...}` settings (verification
// on by default, host name checked, client certificate), never uses a proxy,
// and its failures map to the same Reasons. The caller then sends and
// receives bytes, each call bounded by the probe deadline.
//
// Transcript steps written here: "connected" (TCP connect time) and "TLS"
// (handshake time, days until the server certificate expires).
//
// Thread-safety: a Stream belongs to one probe run (one thread).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "probes/lib/http/http_client.h"

namespace pacs::http {

struct StreamStatus {
  bool ok = false;
  Reason reason = Reason::internal;
  std::string message;  // one line
};

class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Connects to host:port (TLS when `tls` is set). Fails with dns_failure,
  // connection_refused, connect_timeout, tls_failure, or response_timeout
  // when a TLS handshake started but did not finish before the deadline.
  StreamStatus connect(const std::string& host, int port, const std::optional<Tls>& tls, const ProbeContext& ctx);
  // Sends every byte before the deadline (response_timeout otherwise;
  // connection_reset when the peer closed or reset the connection).
  StreamStatus send_all(std::string_view data, const ProbeContext& ctx);
  // Appends what arrives next (at most `max` bytes) to `out` and returns as
  // soon as something arrived. response_timeout at the deadline,
  // connection_reset when the peer closed or reset the connection.
  StreamStatus receive_some(std::string& out, std::size_t max, const ProbeContext& ctx);

  // Seconds from the start of connect(); 0 when not reached.
  double connect_seconds() const { return connect_seconds_; }
  double tls_seconds() const { return tls_seconds_; }
  std::optional<double> cert_not_after() const { return cert_not_after_; }

 private:
  bool wait(bool for_write, const ProbeContext& ctx);
  void* curl_ = nullptr;
  bool connected_ = false;
  double connect_seconds_ = 0, tls_seconds_ = 0;
  std::optional<double> cert_not_after_;
  std::string where_;  // "host:port", for messages
};

}  // namespace pacs::http
