// store, retrieve and commit: the image round trip (see image_checks.h and
// README.md "Images in, images out").
#include "probes/dicom/image_checks.h"

#include <poll.h>

#include <algorithm>
#include <thread>

#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/cond.h"
#include "dcmtk/ofstd/ofstd.h"

#include "probes/dicom/dimse_ops.h"
#include "probes/dicom/storage_scp.h"
#include "probes/log.h"

namespace pacs::dicom {

using namespace std::chrono_literals;

namespace {

constexpr const char* kStoreHelp = "Time from the canary's C-STORE request to its response in the last run.";
constexpr const char* kFindableHelp =
    "Time from the canary's C-STORE response until a C-FIND found it in the last run.";
constexpr const char* kCanaryStudiesHelp =
    "Studies of the agent's test patient in the archive after the last store run's cleanup.";
constexpr const char* kCleanupHelp = "1 if the last run deleted its canary study again, 0 if the cleanup failed.";
constexpr const char* kSubopsHelp = "Sub-operations of the last C-GET/C-MOVE by result, as the archive reported them.";
constexpr const char* kInstancesHelp = "Expected instances the agent received in the last retrieve run.";
constexpr const char* kBytesHelp = "Data set bytes of the instances received in the last retrieve run.";
constexpr const char* kRetrieveFirstHelp = "Time from the C-GET/C-MOVE request to the first instance received.";
constexpr const char* kCommitHelp = "Time from the N-ACTION request to the storage commitment report.";
constexpr const char* kCommitFailedHelp = "Instances listed as failed in the last storage commitment report.";

double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

bool store_ok(unsigned status) { return status == 0 || (status & 0xf000) == 0xb000; }

// PS3.4 Table J.3-2 (Failure Reason of storage commitment).
std::string failure_reason_text(unsigned r) {
  switch (r) {
    case 0x0110: return "processing failure";
    case 0x0112: return "no such object instance";
    case 0x0119: return "class / instance conflict";
    case 0x0122: return "referenced SOP class not supported";
    case 0x0131: return "duplicate transaction UID";
    case 0x0213: return "resource limitation";
  }
  return "unknown";
}

struct StepFailure {
  Failure f;
  std::optional<unsigned> status;  // the DIMSE status that failed, when one did
};

ProbeResult failed_result(const Failure& f, const DicomAssociation* a, const ProbeContext& ctx) {
  ctx.note("result", std::string(to_string(f.reason)) + ": " + f.message);
  auto r = ProbeResult::fail(f.reason, f.message);
  if (a) add_association_samples(r, *a);
  return r;
}

AssociationSettings settings_for(const DicomOptions& o, const ProbeContext& ctx,
                                 std::vector<PresentationContextRequest> contexts) {
  AssociationSettings s;
  s.host = o.host;
  s.port = o.port;
  s.calling_ae_title = o.calling_ae_title;
  s.called_ae_title = o.called_ae_title;
  s.contexts = std::move(contexts);
  s.tls = o.tls ? &*o.tls : nullptr;
  s.transcript = ctx.transcript;
  return s;
}

// Opens `a`; a failure, or a missing context, is returned.
std::optional<Failure> open_with(DicomAssociation& a, const std::vector<std::string>& needed) {
  if (auto f = a.open()) return f;
  for (const auto& as : needed) {
    if (a.accepted_context(as) == 0) {
      a.abort();
      return Failure{Reason::association_rejected,
                     "the archive did not accept the presentation context for " + uid_name(as)};
    }
  }
  return std::nullopt;
}

void drain_scp_events(StorageScp& scp, const ProbeContext& ctx, Clock::time_point start) {
  for (auto& e : scp.take_events()) ctx.note(e.step, e.detail + " (at +" + ms_text(secs(start, e.at)) + ")");
}

// ---------------------------------------------------------------------------
// Store and find back (every image check starts with it, unless retrieve
// fetches a fixed study).

struct StorePhase {
  bool stored = false;  // the archive answered the C-STORE with success/warning
  unsigned store_status = 0;
  double store_seconds = 0;
  std::optional<double> findable_seconds;
  int find_attempts = 0;
};

std::optional<StepFailure> store_and_find(DicomAssociation& a, canary::Object& obj, Clock::time_point find_until,
                                          StorePhase& out, const ProbeContext& ctx) {
  const T_ASC_PresentationContextID store_pc = a.accepted_context(obj.sop_class_uid());
  const T_ASC_PresentationContextID find_pc = a.accepted_context(UID_FINDStudyRootQueryRetrieveInformationModel);
  T_DIMSE_C_StoreRQ req{};
  req.MessageID = a.get()->nextMsgID++;
  OFStandard::strlcpy(req.AffectedSOPClassUID, obj.sop_class_uid().c_str(), sizeof req.AffectedSOPClassUID);
  OFStandard::strlcpy(req.AffectedSOPInstanceUID, obj.uids().instance.c_str(), sizeof req.AffectedSOPInstanceUID);
  req.DataSetType = DIMSE_DATASET_PRESENT;
  req.Priority = DIMSE_PRIORITY_MEDIUM;
  T_DIMSE_C_StoreRSP rsp{};
  DcmDataset* detail = nullptr;
  ctx.note("C-STORE-RQ", "the canary: " + uid_name(obj.sop_class_uid()) + ", test patient, " +
                             std::to_string(obj.pixels().size()) + " bytes of pixel data");
  auto t0 = Clock::now();
  OFCondition cond = DIMSE_storeUser(a.get(), store_pc, &req, nullptr, &obj.dataset(), nullptr, nullptr,
                                     DIMSE_NONBLOCKING, a.timeout_seconds(), &rsp, &detail);
  auto t1 = Clock::now();
  delete detail;
  if (cond.bad()) {
    auto f = a.failure(cond, "C-STORE");
    ctx.note("C-STORE-RSP", std::string(to_string(f.reason)) + ": " + f.message);
    return StepFailure{f, std::nullopt};
  }
  out.store_status = rsp.DimseStatus;
  out.store_seconds = secs(t0, t1);
  ctx.note("C-STORE-RSP", "status " + status_text("C-STORE", rsp.DimseStatus) + " after " + ms_text(out.store_seconds));
  if (!store_ok(rsp.DimseStatus)) {
    return StepFailure{{Reason::dimse_status, "C-STORE of the canary returned status " +
                                                  status_text("C-STORE", rsp.DimseStatus)},
                       rsp.DimseStatus};
  }
  out.stored = true;

  // Find it back at IMAGE level by its own UIDs (Study Root needs the
  // unique keys of the levels above), until found or find_until.
  Duration delay = 25ms;
  for (;;) {
    ++out.find_attempts;
    DcmDataset q;
    q.putAndInsertString(DCM_QueryRetrieveLevel, "IMAGE");
    q.putAndInsertString(DCM_StudyInstanceUID, obj.uids().study.c_str());
    q.putAndInsertString(DCM_SeriesInstanceUID, obj.uids().series.c_str());
    q.putAndInsertString(DCM_SOPInstanceUID, obj.uids().instance.c_str());
    ctx.note("C-FIND-RQ", "Study Root, IMAGE level, the canary's UIDs (attempt " + std::to_string(out.find_attempts) + ")");
    FindResult fr;
    if (auto f = find(a, find_pc, UID_FINDStudyRootQueryRetrieveInformationModel, q, obj.uids().instance, fr,
                      "find back", ctx.transcript)) {
      return StepFailure{*f, std::nullopt};
    }
    if (fr.status != 0) {
      return StepFailure{{Reason::dimse_status, "C-FIND for the stored canary returned status " +
                                                    status_text("C-FIND", fr.status)},
                         fr.status};
    }
    if (fr.uid_seen) {
      out.findable_seconds = secs(t1, Clock::now());
      return std::nullopt;
    }
    if (fr.other_uid) {
      return StepFailure{{Reason::content_mismatch,
                          "the C-FIND for the canary's SOP Instance UID answered with another SOP Instance UID"},
                         std::nullopt};
    }
    auto now = Clock::now();
    if (now + delay >= find_until) {
      return StepFailure{{Reason::stored_not_found,
                          "the archive answered the C-STORE with " + status_text("C-STORE", out.store_status) +
                              " but " + std::to_string(out.find_attempts) + " C-FIND(s) over " +
                              ms_text(secs(t1, now)) + " did not find the canary"},
                         std::nullopt};
    }
    std::this_thread::sleep_for(delay);  // the archive may index asynchronously
    delay = std::min<Duration>(delay * 2, 500ms);
  }
}

std::vector<PresentationContextRequest> store_contexts(const canary::Object& obj) {
  return {{obj.sop_class_uid(), plain_transfer_syntaxes()},
          {UID_FINDStudyRootQueryRetrieveInformationModel, plain_transfer_syntaxes()}};
}

// Opens an association, stores and finds back, releases (retrieve, commit).
std::optional<ProbeResult> store_phase_alone(const DicomOptions& o, const ProbeContext& ctx, canary::Object& obj,
                                             Clock::time_point find_until, StorePhase& phase,
                                             std::deque<std::string>& pending);

// ---------------------------------------------------------------------------
// Cleanup

struct CleanupSummary {
  std::optional<bool> success;  // nullopt: cleanup type none
  std::string text;
};

CleanupSummary cleanup(const DicomOptions& o, const ProbeContext& ctx, const std::string& study_uid,
                       std::deque<std::string>& pending) {
  const auto& c = o.store->canary.cleanup;
  CleanupSummary s;
  if (c.type == canary::Cleanup::Type::none) {
    s.text = "no cleanup (type none)";
    return s;
  }
  auto out = canary::cleanup_study(c, study_uid, ctx);
  s.success = out.status != canary::CleanupOutcome::Status::failed;
  s.text = "cleanup: " + out.message;
  if (!*s.success) {
    if (std::find(pending.begin(), pending.end(), study_uid) == pending.end()) pending.push_back(study_uid);
    while (pending.size() > 32) pending.pop_front();
    if (ctx.log) {
      ctx.log->warn("canary cleanup failed; retried next run",
                    {{"component", "dicom"}, {"reason", to_string(out.reason)}, {"error", out.message}});
    }
  }
  // Earlier runs' leftovers, a few per run while time remains.
  int retried = 0;
  for (auto it = pending.begin(); it != pending.end() && retried < 3 && ctx.remaining() > 300ms;) {
    if (*it == study_uid) {
      ++it;
      continue;
    }
    ++retried;
    auto r = canary::cleanup_study(c, *it, ctx);
    if (r.status == canary::CleanupOutcome::Status::failed) {
      ++it;
    } else {
      it = pending.erase(it);
    }
  }
  if (!pending.empty()) s.text += " (" + std::to_string(pending.size()) + " earlier canary studies still to delete)";
  return s;
}

void add_cleanup_sample(ProbeResult& r, const CleanupSummary& c) {
  if (c.success) r.add("pacs_dicom_canary_cleanup_success", kCleanupHelp, *c.success ? 1 : 0);
}

std::optional<ProbeResult> store_phase_alone(const DicomOptions& o, const ProbeContext& ctx, canary::Object& obj,
                                             Clock::time_point find_until, StorePhase& phase,
                                             std::deque<std::string>& pending) {
  DicomAssociation a(settings_for(o, ctx, store_contexts(obj)), ctx.deadline);
  if (auto f = open_with(a, {obj.sop_class_uid(), UID_FINDStudyRootQueryRetrieveInformationModel})) {
    return failed_result(*f, &a, ctx);
  }
  a.begin_dimse();
  auto sf = store_and_find(a, obj, find_until, phase, ctx);
  a.end_dimse();
  if (sf) {
    if (sf->status || sf->f.reason == Reason::stored_not_found || sf->f.reason == Reason::content_mismatch) a.release();
    auto r = failed_result({sf->f.reason, "storing the canary first: " + sf->f.message}, nullptr, ctx);
    if (sf->status) r.add("pacs_dicom_dimse_status", kDimseStatusHelp, *sf->status);
    if (phase.stored) add_cleanup_sample(r, cleanup(o, ctx, obj.uids().study, pending));
    return r;
  }
  if (auto f = a.release()) {
    auto r = failed_result(*f, nullptr, ctx);
    add_cleanup_sample(r, cleanup(o, ctx, obj.uids().study, pending));
    return r;
  }
  return std::nullopt;
}

Clock::time_point fraction_of(const ProbeContext& ctx, Clock::time_point start, double f) {
  return start + std::chrono::duration_cast<Clock::duration>((ctx.deadline - start) * f);
}

}  // namespace

// ---------------------------------------------------------------------------

ProbeResult run_store(const DicomOptions& o, const ProbeContext& ctx, std::deque<std::string>& pending) {
  const auto start = Clock::now();
  auto obj = canary::make_object(o.store->canary, "pacs-agent C-STORE canary");
  DicomAssociation a(settings_for(o, ctx, store_contexts(obj)), ctx.deadline);
  if (auto f = open_with(a, {obj.sop_class_uid(), UID_FINDStudyRootQueryRetrieveInformationModel})) {
    return failed_result(*f, &a, ctx);
  }
  StorePhase phase;
  a.begin_dimse();
  // Leave time for the cleanup, the count and the release.
  auto sf = store_and_find(a, obj, fraction_of(ctx, start, 0.7), phase, ctx);
  a.end_dimse();

  ProbeResult r = ProbeResult::ok();
  std::optional<unsigned> dimse_status;
  if (phase.stored) dimse_status = phase.store_status;
  if (sf && sf->status) dimse_status = sf->status;
  if (phase.stored) r.add("pacs_dicom_store_seconds", kStoreHelp, phase.store_seconds);
  if (phase.findable_seconds) r.add("pacs_dicom_store_findable_seconds", kFindableHelp, *phase.findable_seconds);
  // Whatever happened after the archive took the object: delete it again.
  CleanupSummary cs;
  if (phase.stored) cs = cleanup(o, ctx, obj.uids().study, pending);
  add_cleanup_sample(r, cs);

  // One C-FIND: how many canary studies does the archive hold? (Not after
  // the association broke down.)
  std::optional<int> studies;
  const bool usable = !sf || sf->f.reason == Reason::dimse_status || sf->f.reason == Reason::stored_not_found ||
                      sf->f.reason == Reason::content_mismatch;
  if (usable) {
    DcmDataset q;
    q.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
    q.putAndInsertString(DCM_PatientID, o.store->canary.patient_id.c_str());
    q.insertEmptyElement(DCM_StudyInstanceUID);
    ctx.note("C-FIND-RQ", "Study Root, STUDY level, the test patient's studies");
    FindResult fr;
    auto ff = find(a, a.accepted_context(UID_FINDStudyRootQueryRetrieveInformationModel),
                   UID_FINDStudyRootQueryRetrieveInformationModel, q, "", fr, "canary studies", ctx.transcript);
    if (!ff && fr.status == 0) {
      studies = fr.matches;
      r.add("pacs_dicom_canary_studies", kCanaryStudiesHelp, fr.matches);
    } else if (!sf) {
      if (ff) {
        sf = StepFailure{*ff, std::nullopt};
      } else {
        sf = StepFailure{{Reason::dimse_status, "C-FIND for the canary studies returned status " +
                                                    status_text("C-FIND", fr.status)},
                         fr.status};
        dimse_status = fr.status;
      }
    }
  }
  if (dimse_status) r.add("pacs_dicom_dimse_status", kDimseStatusHelp, *dimse_status);
  std::optional<Failure> rel;
  if (usable && (!sf || sf->f.reason != Reason::association_aborted)) rel = a.release();
  add_association_samples(r, a);
  if (sf) {
    ctx.note("result", std::string(to_string(sf->f.reason)) + ": " + sf->f.message);
    r.success = false;
    r.reason = sf->f.reason;
    r.message = sf->f.message;
    if (!cs.text.empty()) r.message += "; " + cs.text;
    return r;
  }
  if (rel) {
    ctx.note("result", std::string(to_string(rel->reason)) + ": " + rel->message);
    r.success = false;
    r.reason = rel->reason;
    r.message = rel->message;
    return r;
  }
  r.message = "canary stored in " + ms_text(phase.store_seconds) + " (" + status_text("C-STORE", phase.store_status) +
              "), findable after " + ms_text(phase.findable_seconds.value_or(0)) + " (" +
              std::to_string(phase.find_attempts) + " C-FIND); " + cs.text +
              (studies ? "; " + std::to_string(*studies) + " canary studies in the archive" : std::string());
  return r;
}

// ---------------------------------------------------------------------------

namespace {

struct Counts {
  unsigned status = 0;
  bool final = false;
  unsigned remaining = 0, completed = 0, failed = 0, warning = 0;
};

std::vector<PresentationContextRequest> get_contexts(const canary::Object* obj) {
  std::vector<PresentationContextRequest> c = {
      {UID_GETStudyRootQueryRetrieveInformationModel, plain_transfer_syntaxes()}};
  if (obj) {
    c.push_back({obj->sop_class_uid(), plain_transfer_syntaxes(), ASC_SC_ROLE_SCP});
  } else {
    // A fixed study may hold any image type: the common storage classes.
    for (int i = 0; i < numberOfDcmShortSCUStorageSOPClassUIDs && c.size() < 120; ++i) {
      c.push_back({dcmShortSCUStorageSOPClassUIDs[i], plain_transfer_syntaxes(), ASC_SC_ROLE_SCP});
    }
  }
  return c;
}

// C-GET on `a`: the archive answers with C-STORE sub-operations on the same
// association, then C-GET responses.
std::optional<Failure> do_get(DicomAssociation& a, DcmDataset& ident, const InstanceFilter& filter, Received& rx,
                              Counts& counts, const ProbeContext& ctx) {
  const auto pcid = a.accepted_context(UID_GETStudyRootQueryRetrieveInformationModel);
  T_DIMSE_Message msg{};
  msg.CommandField = DIMSE_C_GET_RQ;
  auto& req = msg.msg.CGetRQ;
  req.MessageID = a.get()->nextMsgID++;
  OFStandard::strlcpy(req.AffectedSOPClassUID, UID_GETStudyRootQueryRetrieveInformationModel,
                      sizeof req.AffectedSOPClassUID);
  req.Priority = DIMSE_PRIORITY_MEDIUM;
  req.DataSetType = DIMSE_DATASET_PRESENT;
  ctx.note("C-GET-RQ", "Study Root, STUDY level, " + std::string(filter.canary ? "the canary study" : "the QC study"));
  OFCondition cond = DIMSE_sendMessageUsingMemoryData(a.get(), pcid, &msg, nullptr, &ident, nullptr, nullptr);
  if (cond.bad()) return a.failure(cond, "C-GET");
  for (;;) {
    T_ASC_PresentationContextID rpc = 0;
    T_DIMSE_Message in{};
    DcmDataset* detail = nullptr;
    cond = DIMSE_receiveCommand(a.get(), DIMSE_NONBLOCKING, a.timeout_seconds(), &rpc, &in, &detail);
    delete detail;
    if (cond.bad()) return a.failure(cond, "C-GET");
    if (in.CommandField == DIMSE_C_STORE_RQ) {
      int ok = rx.accepted, refused = rx.refused;
      cond = receive_store(a.get(), rpc, in.msg.CStoreRQ, filter, rx, a.timeout_seconds());
      ctx.note("C-STORE-RQ (sub-operation)", rx.accepted > ok        ? "expected instance received, answered 0x0000"
                                             : rx.refused > refused ? "unexpected instance refused unread, answered 0x0124"
                                                                    : "expected SOP instance, different content");
      if (cond.bad()) return a.failure(cond, "C-STORE sub-operation");
      continue;
    }
    if (in.CommandField != DIMSE_C_GET_RSP) {
      return Failure{Reason::protocol_error, "unexpected DIMSE command " + hex4(in.CommandField) + " during C-GET"};
    }
    const auto& rsp = in.msg.CGetRSP;
    counts.status = rsp.DimseStatus;
    if (rsp.opts & O_GET_NUMBEROFREMAININGSUBOPERATIONS) counts.remaining = rsp.NumberOfRemainingSubOperations;
    if (rsp.opts & O_GET_NUMBEROFCOMPLETEDSUBOPERATIONS) counts.completed = rsp.NumberOfCompletedSubOperations;
    if (rsp.opts & O_GET_NUMBEROFFAILEDSUBOPERATIONS) counts.failed = rsp.NumberOfFailedSubOperations;
    if (rsp.opts & O_GET_NUMBEROFWARNINGSUBOPERATIONS) counts.warning = rsp.NumberOfWarningSubOperations;
    std::string cnt = "remaining " + std::to_string(counts.remaining) + ", completed " +
                      std::to_string(counts.completed) + ", failed " + std::to_string(counts.failed) + ", warning " +
                      std::to_string(counts.warning);
    if (rsp.DimseStatus == STATUS_Pending) {
      ctx.note("C-GET-RSP", "pending: " + cnt);
      continue;
    }
    counts.final = true;
    ctx.note("C-GET-RSP", "final status " + status_text("C-GET", rsp.DimseStatus) + ": " + cnt);
    if (rsp.DataSetType != DIMSE_DATASET_NULL) {  // failed SOP instance list: read, dropped
      DcmDataset* ids = nullptr;
      cond = DIMSE_receiveDataSetInMemory(a.get(), DIMSE_NONBLOCKING, a.timeout_seconds(), &rpc, &ids, nullptr, nullptr);
      delete ids;
      if (cond.bad()) return a.failure(cond, "C-GET");
    }
    return std::nullopt;
  }
}

struct MoveCallback {
  Counts* counts;
  const ProbeContext* ctx;
};

void on_move(void* data, T_DIMSE_C_MoveRQ*, int, T_DIMSE_C_MoveRSP* rsp) {
  auto* m = static_cast<MoveCallback*>(data);
  m->counts->remaining = rsp->NumberOfRemainingSubOperations;
  m->counts->completed = rsp->NumberOfCompletedSubOperations;
  m->counts->failed = rsp->NumberOfFailedSubOperations;
  m->counts->warning = rsp->NumberOfWarningSubOperations;
  m->ctx->note("C-MOVE-RSP", "pending: remaining " + std::to_string(rsp->NumberOfRemainingSubOperations) +
                                 ", completed " + std::to_string(rsp->NumberOfCompletedSubOperations));
}

std::optional<Failure> do_move(DicomAssociation& a, DcmDataset& ident, const std::string& destination, Counts& counts,
                               const ProbeContext& ctx) {
  const auto pcid = a.accepted_context(UID_MOVEStudyRootQueryRetrieveInformationModel);
  T_DIMSE_C_MoveRQ req{};
  req.MessageID = a.get()->nextMsgID++;
  OFStandard::strlcpy(req.AffectedSOPClassUID, UID_MOVEStudyRootQueryRetrieveInformationModel,
                      sizeof req.AffectedSOPClassUID);
  req.Priority = DIMSE_PRIORITY_MEDIUM;
  req.DataSetType = DIMSE_DATASET_PRESENT;
  OFStandard::strlcpy(req.MoveDestination, destination.c_str(), sizeof req.MoveDestination);
  ctx.note("C-MOVE-RQ", "Study Root, STUDY level, move destination " + destination);
  T_DIMSE_C_MoveRSP rsp{};
  DcmDataset* detail = nullptr;
  DcmDataset* ids = nullptr;
  MoveCallback cb{&counts, &ctx};
  OFCondition cond = DIMSE_moveUser(a.get(), pcid, &req, &ident, &on_move, &cb, DIMSE_NONBLOCKING,
                                    a.timeout_seconds(), nullptr, nullptr, nullptr, &rsp, &detail, &ids, OFFalse);
  delete detail;
  delete ids;
  if (cond.bad()) return a.failure(cond, "C-MOVE");
  counts.final = true;
  counts.status = rsp.DimseStatus;
  if (rsp.opts & O_MOVE_NUMBEROFREMAININGSUBOPERATIONS) counts.remaining = rsp.NumberOfRemainingSubOperations;
  if (rsp.opts & O_MOVE_NUMBEROFCOMPLETEDSUBOPERATIONS) counts.completed = rsp.NumberOfCompletedSubOperations;
  if (rsp.opts & O_MOVE_NUMBEROFFAILEDSUBOPERATIONS) counts.failed = rsp.NumberOfFailedSubOperations;
  if (rsp.opts & O_MOVE_NUMBEROFWARNINGSUBOPERATIONS) counts.warning = rsp.NumberOfWarningSubOperations;
  ctx.note("C-MOVE-RSP", "final status " + status_text("C-MOVE", rsp.DimseStatus) + ": remaining " +
                             std::to_string(counts.remaining) + ", completed " + std::to_string(counts.completed) +
                             ", failed " + std::to_string(counts.failed) + ", warning " +
                             std::to_string(counts.warning));
  return std::nullopt;
}

}  // namespace

ProbeResult run_retrieve(const DicomOptions& o, const ProbeContext& ctx, std::deque<std::string>& pending) {
  const auto start = Clock::now();
  const bool move = o.retrieve.method == RetrieveOptions::Method::move;
  const std::string service = move ? "C-MOVE" : "C-GET";
  std::optional<canary::Object> obj;
  InstanceFilter filter;
  std::string study_uid;
  if (o.retrieve.study_uid) {
    study_uid = *o.retrieve.study_uid;
    filter.study_uid = study_uid;
  } else {
    obj = canary::make_object(o.store->canary, "pacs-agent retrieve canary");
    StorePhase phase;
    if (auto r = store_phase_alone(o, ctx, *obj, fraction_of(ctx, start, 0.4), phase, pending)) return *r;
    study_uid = obj->uids().study;
    filter.canary = &*obj;
  }

  ProbeResult r = ProbeResult::ok();
  Received rx;
  Counts counts;
  std::optional<Failure> fail;
  std::optional<StorageScp> scp;
  Clock::time_point sent;
  {
    if (move) {
      scp.emplace(StorageScp::Settings{o.retrieve.scp, filter, {}, {}}, ctx.deadline);
      if (auto f = scp->start()) fail = f;
      drain_scp_events(*scp, ctx, start);
    }
    std::vector<PresentationContextRequest> contexts =
        move ? std::vector<PresentationContextRequest>{{UID_MOVEStudyRootQueryRetrieveInformationModel,
                                                        plain_transfer_syntaxes()}}
             : get_contexts(obj ? &*obj : nullptr);
    DicomAssociation a(settings_for(o, ctx, std::move(contexts)), ctx.deadline);
    if (!fail) {
      fail = open_with(a, {move ? UID_MOVEStudyRootQueryRetrieveInformationModel
                                : UID_GETStudyRootQueryRetrieveInformationModel});
    }
    if (!fail) {
      DcmDataset ident;
      ident.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
      ident.putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str());
      a.begin_dimse();
      sent = Clock::now();
      fail = move ? do_move(a, ident, o.retrieve.scp.ae_title, counts, ctx) : do_get(a, ident, filter, rx, counts, ctx);
      a.end_dimse();
      if (!fail) {
        if (auto f = a.release()) fail = f;
      }
    }
    add_association_samples(r, a);
  }
  if (move && scp) {
    // The archive reported its sub-operations; the instances should have
    // reached our SCP by now. Wait for them (and the end of the inbound
    // association) at most until the deadline.
    if (!fail && counts.final && counts.status == 0) {
      unsigned expect = std::max(1u, counts.completed);
      scp->wait([&](const StorageScp::State& s) {
        return static_cast<unsigned>(s.received.accepted + s.received.mismatched) >= expect;
      }, ctx.deadline);
    }
    auto st = scp->state();
    rx = st.received;
    scp->stop();
    drain_scp_events(*scp, ctx, start);
    if (!fail && counts.final && counts.status == 0 && rx.accepted + rx.mismatched == 0) {
      fail = Failure{Reason::inbound_timeout,
                     st.associations + st.rejected == 0
                         ? "C-MOVE reported " + std::to_string(counts.completed) +
                               " completed sub-operation(s), but the archive never connected to the agent's SCP on " +
                               o.retrieve.scp.listen_address + ":" + std::to_string(o.retrieve.scp.listen_port) +
                               " before the deadline (is move destination " + o.retrieve.scp.ae_title +
                               " mapped to this host and port at the archive?)"
                         : "the archive connected to the agent's SCP but no expected instance arrived before the "
                           "deadline (" + std::to_string(st.rejected) + " association(s) rejected, " +
                           std::to_string(rx.refused) + " unexpected instance(s) refused)"};
    }
  }

  if (counts.final) {
    r.add("pacs_dicom_dimse_status", kDimseStatusHelp, counts.status);
    r.add("pacs_dicom_retrieve_suboperations", kSubopsHelp, counts.completed, {{"result", "completed"}});
    r.add("pacs_dicom_retrieve_suboperations", kSubopsHelp, counts.failed, {{"result", "failed"}});
    r.add("pacs_dicom_retrieve_suboperations", kSubopsHelp, counts.warning, {{"result", "warning"}});
  }
  r.add("pacs_dicom_retrieve_instances", kInstancesHelp, rx.accepted);
  r.add("pacs_dicom_retrieve_bytes", kBytesHelp, rx.bytes);
  if (rx.first) r.add("pacs_dicom_retrieve_first_instance_seconds", kRetrieveFirstHelp, secs(sent, *rx.first));

  if (!fail && counts.final) {
    if (counts.status != 0) {
      std::string m = service + " returned status " + status_text(service, counts.status);
      if (counts.status == STATUS_MOVE_Refused_MoveDestinationUnknown && move) {
        m += ": the archive does not know move destination \"" + o.retrieve.scp.ae_title + "\"";
      }
      fail = Failure{Reason::dimse_status, m};
    } else if (rx.mismatched > 0) {
      std::string what;
      for (const auto& d : rx.differences) what += (what.empty() ? "" : ", ") + d;
      fail = Failure{Reason::content_mismatch, "the retrieved canary differs from what was stored: " + what};
    } else if (counts.completed == 0 && rx.accepted == 0) {
      fail = Failure{Reason::stored_not_found, service + " found nothing to retrieve for the " +
                                                   std::string(obj ? "stored canary" : "configured study_uid") +
                                                   " (0 sub-operations)"};
    } else if (rx.accepted == 0) {
      fail = Failure{Reason::content_mismatch, service + " reported " + std::to_string(counts.completed) +
                                                   " completed sub-operation(s) but no instance arrived"};
    } else if (obj && rx.accepted != 1) {
      fail = Failure{Reason::content_mismatch,
                     service + " delivered the canary " + std::to_string(rx.accepted) + " times"};
    }
  }
  CleanupSummary cs;
  if (obj) cs = cleanup(o, ctx, obj->uids().study, pending);
  add_cleanup_sample(r, cs);
  if (fail) {
    ctx.note("result", std::string(to_string(fail->reason)) + ": " + fail->message);
    r.success = false;
    r.reason = fail->reason;
    r.message = fail->message + (cs.text.empty() ? "" : "; " + cs.text);
    return r;
  }
  r.message = service + ": " + std::to_string(rx.accepted) + " instance(s), " +
              std::to_string(static_cast<long long>(rx.bytes)) + " bytes" + (obj ? " as stored" : "") +
              ", first after " + ms_text(rx.first ? secs(sent, *rx.first) : 0) + "; completed " +
              std::to_string(counts.completed) + ", failed " + std::to_string(counts.failed) + ", warning " +
              std::to_string(counts.warning) + (cs.text.empty() ? "" : "; " + cs.text);
  return r;
}

// ---------------------------------------------------------------------------

ProbeResult run_commit(const DicomOptions& o, const ProbeContext& ctx, std::deque<std::string>& pending) {
  const auto start = Clock::now();
  auto obj = canary::make_object(o.store->canary, "pacs-agent commitment canary");
  StorePhase phase;
  if (auto r = store_phase_alone(o, ctx, obj, fraction_of(ctx, start, 0.4), phase, pending)) return *r;
  const std::string transaction = canary::fresh_uids(o.store->canary.uid_root).instance;

  ProbeResult r = ProbeResult::ok();
  std::optional<Failure> fail;
  std::optional<CommitReport> report;
  std::optional<unsigned> action_status;
  Clock::time_point sent = Clock::now();
  std::optional<StorageScp> scp;
  const bool listen = o.commit.scp.listen_port != 0;
  if (listen) {
    scp.emplace(StorageScp::Settings{o.commit.scp, {}, transaction, obj.uids().instance}, ctx.deadline);
    if (auto f = scp->start()) fail = f;
    drain_scp_events(*scp, ctx, start);
  }
  {
    DicomAssociation a(settings_for(o, ctx, {{kStorageCommitmentSopClass, plain_transfer_syntaxes()}}), ctx.deadline);
    if (!fail) fail = open_with(a, {kStorageCommitmentSopClass});
    if (!fail) {
      a.begin_dimse();
      const auto pcid = a.accepted_context(kStorageCommitmentSopClass);
      DcmDataset ds;
      ds.putAndInsertString(DCM_TransactionUID, transaction.c_str());
      DcmItem* item = nullptr;
      ds.findOrCreateSequenceItem(DCM_ReferencedSOPSequence, item, -2);
      if (item) {
        item->putAndInsertString(DCM_ReferencedSOPClassUID, obj.sop_class_uid().c_str());
        item->putAndInsertString(DCM_ReferencedSOPInstanceUID, obj.uids().instance.c_str());
      }
      T_DIMSE_Message msg{};
      msg.CommandField = DIMSE_N_ACTION_RQ;
      auto& req = msg.msg.NActionRQ;
      req.MessageID = a.get()->nextMsgID++;
      OFStandard::strlcpy(req.RequestedSOPClassUID, kStorageCommitmentSopClass, sizeof req.RequestedSOPClassUID);
      OFStandard::strlcpy(req.RequestedSOPInstanceUID, kStorageCommitmentSopInstance,
                          sizeof req.RequestedSOPInstanceUID);
      req.ActionTypeID = 1;
      req.DataSetType = DIMSE_DATASET_PRESENT;
      ctx.note("N-ACTION-RQ", "Storage Commitment Push Model, 1 referenced instance (the canary)");
      sent = Clock::now();
      OFCondition cond = DIMSE_sendMessageUsingMemoryData(a.get(), pcid, &msg, nullptr, &ds, nullptr, nullptr);
      if (cond.bad()) fail = a.failure(cond, "N-ACTION");
      // The N-ACTION-RSP, then the report: on this association, or on our SCP.
      while (!fail && !report) {
        if (scp) {
          auto st = scp->state();
          if (st.report) {
            report = st.report;
            break;
          }
        }
        if (Clock::now() >= ctx.deadline) break;
        bool readable = ASC_dataWaiting(a.get(), 0);
        if (!readable) {
          pollfd p{a.poll_fd(), POLLIN, 0};
          auto left = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline - Clock::now()).count();
          readable = p.fd >= 0 && ::poll(&p, 1, static_cast<int>(std::clamp<long long>(left, 0, 50))) > 0;
        }
        if (!readable) continue;
        T_ASC_PresentationContextID rpc = 0;
        T_DIMSE_Message in{};
        DcmDataset* detail = nullptr;
        cond = DIMSE_receiveCommand(a.get(), DIMSE_NONBLOCKING, a.timeout_seconds(), &rpc, &in, &detail);
        delete detail;
        if (cond.bad()) {
          // Cut at the deadline while waiting for the report: "no report" below.
          if (!(action_status && a.deadline_hit())) fail = a.failure(cond, action_status ? "N-EVENT-REPORT" : "N-ACTION");
          break;
        }
        if (in.CommandField == DIMSE_N_ACTION_RSP) {
          action_status = in.msg.NActionRSP.DimseStatus;
          ctx.note("N-ACTION-RSP", "status " + status_text("N-ACTION", *action_status));
          if (in.msg.NActionRSP.DataSetType != DIMSE_DATASET_NULL) {
            DcmDataset* reply = nullptr;
            DIMSE_receiveDataSetInMemory(a.get(), DIMSE_NONBLOCKING, a.timeout_seconds(), &rpc, &reply, nullptr, nullptr);
            delete reply;
          }
          if (*action_status != 0) {
            fail = Failure{Reason::dimse_status,
                           "N-ACTION (storage commitment request) returned status " +
                               status_text("N-ACTION", *action_status)};
          }
        } else if (in.CommandField == DIMSE_N_EVENT_REPORT_RQ) {
          CommitReport rep;
          bool ours = false;
          cond = receive_event_report(a.get(), rpc, in.msg.NEventReportRQ, transaction, obj.uids().instance, rep,
                                      ours, a.timeout_seconds());
          ctx.note("N-EVENT-REPORT-RQ", std::string(ours ? "" : "not ours; ") + "on this association, answered 0x0000");
          if (cond.bad()) fail = a.failure(cond, "N-EVENT-REPORT");
          if (ours) {
            rep.same_association = true;
            report = rep;
          }
        } else {
          fail = Failure{Reason::protocol_error,
                         "unexpected DIMSE command " + hex4(in.CommandField) + " during storage commitment"};
        }
      }
      a.end_dimse();
      if (!fail && report) {
        if (auto f = a.release()) fail = f;
      } else if (!fail && !action_status) {
        fail = Failure{Reason::dimse_timeout, "no N-ACTION response (storage commitment request) before the deadline"};
      }
      // Without a report the association is aborted (the destructor does it).
    }
    add_association_samples(r, a);
  }
  if (scp) {
    scp->stop();
    drain_scp_events(*scp, ctx, start);
  }
  if (action_status) r.add("pacs_dicom_dimse_status", kDimseStatusHelp, *action_status);
  if (!fail && !report) {
    fail = listen ? Failure{Reason::inbound_timeout,
                            "no storage commitment report (N-EVENT-REPORT) on the association or on the agent's SCP (" +
                                o.commit.scp.listen_address + ":" + std::to_string(o.commit.scp.listen_port) +
                                ") before the deadline"}
                  : Failure{Reason::dimse_timeout,
                            "no storage commitment report (N-EVENT-REPORT) on the association before the deadline "
                            "(set commit.listen_port when the archive reports on a new association)"};
  }
  if (report) {
    r.add("pacs_dicom_commit_seconds", kCommitHelp, secs(sent, report->at));
    r.add("pacs_dicom_commit_failed_instances", kCommitFailedHelp, report->failed);
    if (!fail) {
      if (report->ours_failed) {
        fail = Failure{Reason::commitment_failed, "storage commitment failed for the canary: failure reason " +
                                                      hex4(report->failure_reason) + " (" +
                                                      failure_reason_text(report->failure_reason) + ")"};
      } else if (!report->ours_committed) {
        fail = Failure{Reason::commitment_failed, "the storage commitment report does not list the canary"};
      }
    }
  }
  auto cs = cleanup(o, ctx, obj.uids().study, pending);
  add_cleanup_sample(r, cs);
  if (fail) {
    ctx.note("result", std::string(to_string(fail->reason)) + ": " + fail->message);
    r.success = false;
    r.reason = fail->reason;
    r.message = fail->message + "; " + cs.text;
    return r;
  }
  r.message = "storage commitment: the canary is committed, report after " + ms_text(secs(sent, report->at)) +
              (report->same_association ? " on the same association" : " on a new association to the agent's SCP") +
              "; " + cs.text;
  return r;
}

}  // namespace pacs::dicom
