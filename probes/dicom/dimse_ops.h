// DIMSE building blocks of the image checks (store, retrieve, commit), on an
// open DicomAssociation (requests) or on any DCMTK association (handling
// what a peer sends us: C-STORE sub-operations of a C-GET/C-MOVE, storage
// commitment N-EVENT-REPORTs). Used by image_checks.cpp and storage_scp.cpp.
//
// PHI rule: received data sets are compared with what we expect (a UID, the
// canary's content) and dropped; nothing of them is logged, exported or put
// into a message. Unexpected instances are refused without being parsed.
//
// Thread-safety: functions are reentrant; each call works on one
// association, used by one thread at a time.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/dimse.h"

#include "probes/dicom/association.h"
#include "probes/lib/canary/canary.h"

namespace pacs::dicom {

inline constexpr const char* kStorageCommitmentSopClass = "1.2.840.10008.1.20.1";
inline constexpr const char* kStorageCommitmentSopInstance = "1.2.840.10008.1.20.1.1";

// HELP of pacs_dicom_dimse_status, the same text for every check that exports it.
inline constexpr const char* kDimseStatusHelp = "DIMSE status of the last final response (0 = success).";

// "0x0000 (Success)"; `service` picks DCMTK's status table: "C-STORE",
// "C-FIND", "C-GET", "C-MOVE", "C-ECHO", "N-ACTION", "N-EVENT-REPORT".
std::string status_text(const std::string& service, unsigned status);
std::string hex4(unsigned v);
std::string ms_text(double seconds);

// The uncompressed transfer syntaxes every context proposes.
const std::vector<std::string>& plain_transfer_syntaxes();

// What the agent accepts when an archive sends it instances (C-GET on the
// same association, C-MOVE to the agent's SCP).
struct InstanceFilter {
  const canary::Object* canary = nullptr;  // exactly this SOP instance (and compared)
  std::string study_uid;                   // else: any instance of this study
};

// What was received, accumulated over one run.
struct Received {
  int accepted = 0;    // expected instances received (and answered with success)
  int refused = 0;     // unexpected instances, refused (0x0124) unread
  int mismatched = 0;  // expected SOP instance, but the content differs
  std::vector<std::string> differences;  // keywords of the first mismatch
  double bytes = 0;                      // data set bytes of accepted instances
  std::optional<Clock::time_point> first;
};

// Reads the data set of `req` (its command already received on `assoc`),
// checks it against `filter`, answers with a C-STORE-RSP. Unexpected SOP
// instances are read off the wire without parsing and refused.
OFCondition receive_store(T_ASC_Association* assoc, T_ASC_PresentationContextID pcid, const T_DIMSE_C_StoreRQ& req,
                          const InstanceFilter& filter, Received& out, int timeout_seconds);

// A storage commitment result (N-EVENT-REPORT) as far as it concerns us.
struct CommitReport {
  Clock::time_point at;
  bool same_association = false;
  unsigned event_type = 0;       // 1 all success, 2 failures exist
  bool transaction_matches = false;
  int referenced = 0, failed = 0;  // items in ReferencedSOPSequence / FailedSOPSequence
  bool ours_committed = false;     // our instance is in ReferencedSOPSequence
  bool ours_failed = false;        // ... or in FailedSOPSequence
  unsigned failure_reason = 0;     // FailureReason of our instance
};

// Reads the data set of an N-EVENT-REPORT-RQ, fills `out` when it carries
// `transaction_uid`, answers with an N-EVENT-REPORT-RSP. Returns false in
// `ours` when the report is about another transaction (answered all the same).
OFCondition receive_event_report(T_ASC_Association* assoc, T_ASC_PresentationContextID pcid,
                                 const T_DIMSE_N_EventReportRQ& req, const std::string& transaction_uid,
                                 const std::string& sop_instance_uid, CommitReport& out, bool& ours,
                                 int timeout_seconds);

// C-FIND on an open association; counts pending responses. With
// `expect_uid`, also checks whether a response's SOPInstanceUID equals it.
struct FindResult {
  unsigned status = 0;
  int matches = 0;
  bool uid_seen = false;     // a response carried expect_uid
  bool other_uid = false;    // a response carried another SOPInstanceUID
};
std::optional<Failure> find(DicomAssociation& a, T_ASC_PresentationContextID pcid, const std::string& sop_class,
                            DcmDataset& query, const std::string& expect_uid, FindResult& out,
                            const std::string& what, Transcript* transcript);

}  // namespace pacs::dicom
