// The access-control canary (check "access", probe dicom_access): asks for
// an association and a C-ECHO under a calling AE title the peer cannot know
// (a fixed prefix and random characters, new every run). A PACS that
// enforces access control refuses it in one of three ways, each a success
// here:
//   - A-ASSOCIATE-RJ (any result/source/reason; typically 1/1/3, calling AE
//     title not recognized), or an A-ASSOCIATE-AC without the Verification
//     context;
//   - an A-ABORT (or a closed connection) instead of an A-ASSOCIATE-AC or a
//     C-ECHO-RSP (Orthanc aborts a C-ECHO it does not allow);
//   - a C-ECHO-RSP with a non-success status.
// A C-ECHO-RSP with status 0x0000 fails the run with access_not_enforced.
// Everything else (no route, nothing listening, timeouts, TLS, garbage)
// fails with its usual reason: a PACS that does not answer proves nothing.
//
// The random title goes into the transcript and the failure message (it is
// not PHI, and the security officer looks it up in the PACS's audit log),
// never into a label.
#include <random>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/dimse.h"

#include "probes/dicom/association.h"
#include "probes/dicom/dimse_ops.h"
#include "probes/dicom/image_checks.h"

namespace pacs::dicom {

std::string random_ae_title(const std::string& prefix, const std::string& avoid) {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::random_device rd;
  std::uniform_int_distribution<int> pick(0, static_cast<int>(sizeof kChars) - 2);
  for (;;) {
    std::string s = prefix.substr(0, kMaxAccessPrefix);
    while (s.size() < 16) s += kChars[pick(rd)];
    if (s != avoid) return s;
  }
}

namespace {

constexpr const char* kRefusedHelp =
    "1 if the peer refused the access canary's random calling AE title in the last run (reject, abort or C-ECHO "
    "status), 0 if it let it in; absent when the peer did not answer.";

}  // namespace

ProbeResult run_access(const DicomOptions& o, const ProbeContext& ctx) {
  const std::string stranger = random_ae_title(o.access.calling_ae_prefix, o.calling_ae_title);
  ctx.note("access canary", "calling AE title " + stranger + " (random, this run only)");

  AssociationSettings s;
  s.host = o.host;
  s.port = o.port;
  s.calling_ae_title = stranger;
  s.called_ae_title = o.called_ae_title;
  s.contexts = {{UID_VerificationSOPClass, plain_transfer_syntaxes()}};
  s.tls = o.tls ? &*o.tls : nullptr;
  s.transcript = ctx.transcript;
  DicomAssociation a(std::move(s), ctx.deadline);

  auto refused = [&](ProbeResult r, const std::string& how) {
    r.success = true;
    r.reason = Reason::none;
    r.message = "unknown calling AE title refused: " + how;
    r.add("pacs_dicom_access_refused", kRefusedHelp, 1);
    ctx.note("access canary", "refused: " + how);
    add_association_samples(r, a);
    return r;
  };
  auto failed = [&](ProbeResult r, const Failure& f) {
    r.success = false;
    r.reason = f.reason;
    r.message = f.message;
    add_association_samples(r, a);
    return r;
  };

  if (auto f = a.open()) {
    if (f->reason == Reason::association_rejected) return refused({}, f->message);
    if (f->reason == Reason::association_aborted) {
      return refused({}, "the peer ended the association before accepting it (" + f->message + ")");
    }
    return failed({}, *f);
  }
  const T_ASC_PresentationContextID pcid = a.accepted_context(UID_VerificationSOPClass);
  if (pcid == 0) {
    a.abort();
    return refused({}, "association accepted without the Verification presentation context");
  }

  DIC_US status = 0;
  DcmDataset* detail = nullptr;
  const DIC_US id = a.get()->nextMsgID++;
  ctx.note("C-ECHO-RQ", "message ID " + std::to_string(id));
  a.begin_dimse();
  OFCondition cond = DIMSE_echoUser(a.get(), id, DIMSE_NONBLOCKING, a.timeout_seconds(), &status, &detail);
  a.end_dimse();
  delete detail;
  if (cond.bad()) {
    Failure f = a.failure(cond, "C-ECHO");
    if (f.reason == Reason::association_aborted) {
      return refused({}, "association accepted, then aborted at the C-ECHO (" + f.message + ")");
    }
    return failed({}, f);
  }
  ctx.note("C-ECHO-RSP", "status " + status_text("C-ECHO", status) + " after " + ms_text(a.times().dimse.value_or(0)));
  ProbeResult r;
  r.add("pacs_dicom_dimse_status", kDimseStatusHelp, status);
  // The exchange was orderly either way: end it politely. A failed release
  // changes nothing about what the peer let in.
  a.release();
  if (status != 0) return refused(std::move(r), "C-ECHO answered with status " + status_text("C-ECHO", status));
  r.add("pacs_dicom_access_refused", kRefusedHelp, 0);
  return failed(std::move(r), {Reason::access_not_enforced,
                               "the peer accepted an association from the unknown calling AE title \"" + stranger +
                                   "\" and answered its C-ECHO with success: anyone on the network can talk DICOM "
                                   "to it"});
}

}  // namespace pacs::dicom
