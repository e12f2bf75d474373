// One DICOM association under a hard deadline, RAII over DCMTK's ASC layer
// (as echoscu uses it), so A-ASSOCIATE-RJ result/source/reason are readable.
//
// How the deadline is kept (DCMTK 3.6.7 has no per-association bound on DNS,
// TCP connect or the TLS handshake, see docs/dcmtk.md):
//   - the host name is resolved here with the deadline, DCMTK gets an IP;
//   - a connect() hook (association.cpp) hands the socket DCMTK is about to
//     connect to the watchdog (as a dup, so the number cannot be reused under
//     us); our DcmTransportLayer records the exact TCP-connect time;
//   - a process-wide watchdog thread shuts that socket down (SHUT_RDWR) when
//     the deadline passes, which aborts a pending connect and ends any
//     blocked read, write or TLS handshake;
//   - ACSE and DIMSE timeouts are derived from the remaining time.
//
// Thread-safety: one DicomAssociation is used by one thread. Any number of
// them may exist concurrently (they share only the watchdog, which is
// synchronised).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmnet/assoc.h"

#include "probes/dicom/dicom_probe.h"

namespace pacs::dicom {

struct PresentationContextRequest {
  std::string abstract_syntax;
  std::vector<std::string> transfer_syntaxes;
  // ASC_SC_ROLE_SCP for the storage contexts of a C-GET (the peer sends us
  // C-STOREs on this association); default otherwise.
  T_ASC_SC_ROLE role = ASC_SC_ROLE_DEFAULT;
};

struct AssociationSettings {
  std::string host;
  int port = 104;
  std::string calling_ae_title;
  std::string called_ae_title;
  std::vector<PresentationContextRequest> contexts;
  const TlsOptions* tls = nullptr;  // must outlive the association
  // Where the steps of open/release/abort are written (ProbeContext::transcript);
  // null when nobody asked for a transcript.
  Transcript* transcript = nullptr;
};

struct RejectInfo {
  int result = 0;        // 1 permanent, 2 transient
  int source = 0;        // 1 service user, 2 ACSE provider, 3 presentation provider
  int dcmtk_reason = 0;  // source<<8 | reason (DCMTK's encoding, e.g. 0x0107)
};

struct Failure {
  Reason reason = Reason::internal;
  std::string message;
};

// Phase durations in seconds; a phase that was not reached stays empty.
struct PhaseTimes {
  std::optional<double> connect, associate, dimse, release;
};

class DicomAssociation {
 public:
  DicomAssociation(AssociationSettings settings, Clock::time_point deadline);
  ~DicomAssociation();  // aborts (bounded) if still associated, frees everything
  DicomAssociation(const DicomAssociation&) = delete;
  DicomAssociation& operator=(const DicomAssociation&) = delete;

  // Resolve, connect, TLS handshake, A-ASSOCIATE. On failure returns the
  // failure (reason + message) and leaves reject() set for an A-ASSOCIATE-RJ.
  std::optional<Failure> open();

  T_ASC_Association* get() { return assoc_; }
  // Accepted presentation context for the abstract syntax, or 0.
  T_ASC_PresentationContextID accepted_context(const std::string& abstract_syntax) const;
  // Whole seconds left (>= 1) for DCMTK's per-call timeouts.
  int timeout_seconds() const;
  Clock::time_point deadline() const { return deadline_; }
  // Our own descriptor of the association's socket (a dup), for poll():
  // readable when the peer sent something (e.g. an N-EVENT-REPORT). -1
  // before open() connected.
  int poll_fd() const;

  // Marks the DIMSE phase; end_dimse() records its duration.
  void begin_dimse();
  void end_dimse();
  // A-RELEASE; a failed or timed-out release is a failure (the peer may be
  // leaking associations). Aborts on failure.
  std::optional<Failure> release();
  // A-ABORT, bounded to a fraction of a second past now.
  void abort();

  // Classifies a DCMTK condition met in the current phase.
  Failure failure(const OFCondition& cond, const std::string& what) const;
  bool deadline_hit() const;
  Phase phase() const { return phase_; }

  const PhaseTimes& times() const { return times_; }
  const std::optional<RejectInfo>& reject() const { return reject_; }
  // notAfter of the peer's TLS certificate (Unix seconds), after open().
  std::optional<double> peer_cert_not_after() const { return cert_not_after_; }

  struct Guard;  // watchdog registration (association.cpp)

 private:
  void read_peer_certificate();
  void note(std::string step, std::string detail) const;
  void note_accepted() const;

  AssociationSettings settings_;
  Clock::time_point deadline_;
  Phase phase_ = Phase::resolve;
  PhaseTimes times_;
  std::optional<RejectInfo> reject_;
  std::optional<double> cert_not_after_;
  Clock::time_point phase_start_{};
  std::unique_ptr<Guard> guard_;
  std::unique_ptr<DcmTransportLayer> layer_;
  std::string tls_protocol_;  // e.g. "TLSv1.3", after a handshake
  T_ASC_Network* net_ = nullptr;
  T_ASC_Parameters* params_ = nullptr;  // owned by assoc_ once requested
  T_ASC_Association* assoc_ = nullptr;
  bool associated_ = false;
};

// True when our connect() hook is in effect (the executable exports it);
// global_init warns when it is not: connects are then bounded only by
// dcmConnectionTimeout.
bool connect_hook_active();
// Whether the hook adopts a socket of this domain and type that the
// association's thread connects (only AF_INET/AF_INET6 stream sockets:
// the resolver may connect UDP or Unix sockets on that thread first).
bool connect_hook_adopts(int domain, int type);
// Stops the watchdog thread (it restarts on demand).
void stop_watchdog();

// A socket shut down (SHUT_RDWR) by the watchdog when `deadline` passes,
// for sockets DCMTK does not connect itself (the agent's own storage SCP).
// Keeps a dup of `fd` so the number cannot be reused under the watchdog.
class SocketDeadline {
 public:
  SocketDeadline(int fd, Clock::time_point deadline);
  ~SocketDeadline();  // disarms, closes the dup
  SocketDeadline(const SocketDeadline&) = delete;
  SocketDeadline& operator=(const SocketDeadline&) = delete;
  // Shuts the socket down now (ends any blocked read/write on it).
  void shutdown_now();
  bool fired() const;

 private:
  std::unique_ptr<DicomAssociation::Guard> guard_;
};

// Short display name of a UID from DCMTK's table ("Verification",
// "SecondaryCaptureImageStorage", "LittleEndianExplicit"), or the UID for
// one it does not know (configured or well-known UIDs only: never a UID a
// peer sent about an object).
std::string uid_name(const std::string& uid);

// Resolves `host` to an IPv4 literal before `deadline`. A lookup that hangs
// keeps at most one helper thread per host name: later callers wait for the
// same lookup instead of starting another.
struct Resolved {
  std::string address;     // set on success
  bool timed_out = false;  // deadline passed before the resolver answered
  std::string error;       // resolver's text on failure
};
Resolved resolve_ipv4(const std::string& host, Clock::time_point deadline);

}  // namespace pacs::dicom
