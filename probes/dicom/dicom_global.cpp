// Process-wide set-up of the dicom kind: runs once in main() before any
// thread starts, because DCMTK's one-time network init races, its timeouts
// and TCP_NODELAY are process globals (docs/dcmtk.md).
#include <cstdlib>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmnet/dul.h"
#include "dcmtk/dcmtls/tlslayer.h"

#include "probes/dicom/association.h"
#include "probes/dicom/dicom.h"
#include "probes/lib/dcmtk/dcmtk_setup.h"
#include "probes/lib/http/http_client.h"
#include "probes/log.h"

namespace pacs::dicom {

void global_init(Logger& log) {
  // Logging into ours (never dataset dumps) and the data dictionary.
  dcmtk::setup(log);

  // Process globals, read by DCMTK on every connect / socket creation.
  // Nagle off, or every loopback C-ECHO measures ~40-90 ms of our own delay.
  ::setenv("TCP_NODELAY", "1", 1);
  // Backstops only: the per-association watchdog enforces each deadline.
  dcmConnectionTimeout.set(60);
  dcmSocketSendTimeout.set(60);
  dcmSocketReceiveTimeout.set(60);
  // The agent's storage SCP (C-MOVE, commitment reports) must not block on
  // a reverse DNS lookup of every peer that connects.
  dcmDisableGethostbyaddr.set(OFTrue);

  // DUL_InitializeNetwork's one-time init (FSM table, SIGPIPE) races when
  // first run from two threads: run it here once.
  T_ASC_Network* net = nullptr;
  if (ASC_initializeNetwork(NET_REQUESTOR, 0, 1, &net).good()) ASC_dropNetwork(&net);

  DcmTLSTransportLayer::initializeOpenSSL();
  http::global_init();  // canary cleanup over REST (idempotent)
  if (!connect_hook_active()) {
    log.warn("connect() hook not in effect: a DICOM TCP connect is bounded by the 60 s backstop, not the probe timeout",
             {{"component", "dcmtk"}});
  }
  log.debug("dcmtk initialised", {{"component", "dcmtk"}, {"version", OFFIS_DCMTK_VERSION_STRING}});
}

void global_shutdown() {
  stop_watchdog();
  dcmtk::teardown();
  http::global_shutdown();
}

}  // namespace pacs::dicom
