#include "probes/dicom/dicom_probe.h"

#include <cstdio>
#include <ctime>
#include <set>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/cond.h"
#include "dcmtk/dcmnet/dimse.h"
#include "dcmtk/ofstd/ofstd.h"

#include "probes/dicom/association.h"
#include "probes/dicom/dimse_ops.h"
#include "probes/dicom/find_groups.h"
#include "probes/dicom/image_checks.h"

namespace pacs::dicom {

std::string_view to_string(Check c) noexcept {
  switch (c) {
    case Check::echo: return "echo";
    case Check::find: return "find";
    case Check::worklist: return "worklist";
    case Check::store: return "store";
    case Check::retrieve: return "retrieve";
    case Check::commit: return "commit";
    case Check::access: return "access";
  }
  return "echo";
}

std::string_view probe_name(Check c) noexcept {
  switch (c) {
    case Check::echo: return "dicom_echo";
    case Check::find: return "dicom_find";
    case Check::worklist: return "dicom_worklist";
    case Check::store: return "dicom_store";
    case Check::retrieve: return "dicom_retrieve";
    case Check::commit: return "dicom_commit";
    case Check::access: return "dicom_access";
  }
  return "dicom_echo";
}

std::string_view to_string(Phase p) noexcept {
  switch (p) {
    case Phase::resolve: return "resolve";
    case Phase::connect: return "connect";
    case Phase::associate: return "associate";
    case Phase::dimse: return "dimse";
    case Phase::release: return "release";
  }
  return "connect";
}

std::vector<Reason> reasons_for(bool tls) {
  std::vector<Reason> r = {Reason::dns_failure,          Reason::connection_refused,  Reason::connect_timeout,
                           Reason::association_rejected, Reason::association_aborted, Reason::association_timeout,
                           Reason::dimse_timeout,        Reason::dimse_status,        Reason::protocol_error};
  if (tls) r.insert(r.end() - 1, Reason::tls_failure);
  return r;
}

std::vector<Reason> reasons_for(const DicomOptions& o, Check c) {
  std::vector<Reason> r = reasons_for(o.tls.has_value());
  if (c == Check::access) {
    // A reject, an abort or a refused C-ECHO is what the canary hopes for:
    // those are its successes, not failures.
    std::erase_if(r, [](Reason x) {
      return x == Reason::association_rejected || x == Reason::association_aborted || x == Reason::dimse_status;
    });
    r.push_back(Reason::access_not_enforced);
    return r;
  }
  const bool canary = c == Check::store || c == Check::commit || (c == Check::retrieve && !o.retrieve.study_uid);
  const bool scp = (c == Check::retrieve && o.retrieve.method == RetrieveOptions::Method::move) ||
                   (c == Check::commit && o.commit.scp.listen_port != 0);
  if (canary || c == Check::retrieve) r.push_back(Reason::stored_not_found);
  if (c == Check::store || c == Check::retrieve) r.push_back(Reason::content_mismatch);
  if (scp) r.push_back(Reason::inbound_timeout);
  if (c == Check::commit) r.push_back(Reason::commitment_failed);
  if (scp) r.push_back(Reason::io_error);
  return r;
}

std::string today_dicom_date() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  return buf;
}

std::string expand_value(const std::string& value, const std::string& today) {
  if (value.size() == 5) {
    std::string lower;
    for (char c : value) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "today") return today;
  }
  return value;
}

std::string_view reject_result_text(int result) {
  switch (result) {
    case 1: return "permanent";
    case 2: return "transient";
  }
  return "unknown";
}

std::string_view reject_source_text(int source) {
  switch (source) {
    case 1: return "service user";
    case 2: return "service provider, ACSE";
    case 3: return "service provider, presentation";
  }
  return "unknown";
}

// PS3.8 Table 9-21 (DCMTK encodes source<<8 | reason).
std::string_view reject_reason_text(int dcmtk_reason) {
  switch (dcmtk_reason) {
    case 0x0101: return "no reason given";
    case 0x0102: return "application context name not supported";
    case 0x0103: return "calling AE title not recognized";
    case 0x0107: return "called AE title not recognized";
    case 0x0201: return "no reason given";
    case 0x0202: return "protocol version not supported";
    case 0x0301: return "temporary congestion";
    case 0x0302: return "local limit exceeded";
  }
  return "reserved";
}

std::string reject_message(int result, int source, int dcmtk_reason) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "association rejected: result=%d (%s) source=%d (%s) reason=0x%04x (%s)", result,
                std::string(reject_result_text(result)).c_str(), source,
                std::string(reject_source_text(source)).c_str(), dcmtk_reason,
                std::string(reject_reason_text(dcmtk_reason)).c_str());
  return buf;
}

Reason classify_condition(unsigned short module, unsigned short code, std::string_view text, Phase phase,
                          bool deadline_hit) {
  if (module == OFM_dcmtls) return deadline_hit ? (phase == Phase::connect ? Reason::connect_timeout
                                                                            : Reason::association_timeout)
                                                : Reason::tls_failure;
  if (module != OFM_dcmnet) return Reason::internal;
  if (code == DULC_ASSOCIATIONREJECTED) return Reason::association_rejected;
  if (code == DULC_UNKNOWNHOST) return Reason::dns_failure;
  auto timeout_for_phase = [&] {
    switch (phase) {
      case Phase::resolve: return Reason::dns_failure;
      case Phase::connect: return Reason::connect_timeout;
      case Phase::associate:
      case Phase::release: return Reason::association_timeout;
      case Phase::dimse: return Reason::dimse_timeout;
    }
    return Reason::internal;
  };
  // Our watchdog shut the socket (or interrupted the connect): whatever
  // DCMTK saw next is a consequence of the deadline, not of the peer.
  if (deadline_hit) return timeout_for_phase();
  switch (code) {
    case DULC_TCPINITERROR:
      return text.find("(Timeout)") != std::string_view::npos ? Reason::connect_timeout : Reason::connection_refused;
    case DULC_READTIMEOUT:
    case DIMSEC_NODATAAVAILABLE: return timeout_for_phase();
    case DULC_PEERABORTEDASSOCIATION:
    case DULC_NETWORKCLOSED:
    case DULC_PEERREQUESTEDRELEASE:
    case DULC_TCPIOERROR: return Reason::association_aborted;
    case DULC_TLSERROR: return Reason::tls_failure;
    case DULC_ILLEGALPDU:
    case DULC_ILLEGALPDULENGTH:
    case DULC_UNRECOGNIZEDPDUTYPE:
    case DULC_UNEXPECTEDPDU:
    case DULC_UNSUPPORTEDPEERPROTOCOL:
    case DULC_PEERILLEGALXFERSYNTAXCOUNT:
    case DULC_ILLEGALREJECTREASON:
    case DULC_ILLEGALREJECTRESULT:
    case DULC_ILLEGALREJECTSOURCE:
    case DULC_PCTRANSLATIONFAILURE:
    case DULC_FSMERROR:
    case DULC_CODINGERROR:
    case DULC_INCORRECTBUFFERLENGTH:
    case DULC_INSUFFICIENTBUFFERLENGTH:
    case DULC_WRONGDATATYPE:
    case DIMSEC_BADCOMMANDTYPE:
    case DIMSEC_INVALIDPRESENTATIONCONTEXTID:
    case DIMSEC_PARSEFAILED:
    case DIMSEC_READPDVFAILED:
    case DIMSEC_RECEIVEFAILED:
    case DIMSEC_UNEXPECTEDPDVTYPE:
    case DIMSEC_UNEXPECTEDREQUEST:
    case DIMSEC_UNEXPECTEDRESPONSE:
    case DIMSEC_UNSUPPORTEDTRANSFERSYNTAX: return Reason::protocol_error;
  }
  return Reason::internal;
}

namespace {

constexpr const char* kPhaseHelp = "Time spent in each phase of the last DICOM probe run.";
constexpr const char* kRejectResultHelp = "A-ASSOCIATE-RJ result of the last run (1 permanent, 2 transient).";
constexpr const char* kRejectSourceHelp =
    "A-ASSOCIATE-RJ source of the last run (1 service user, 2 ACSE provider, 3 presentation provider).";
constexpr const char* kRejectReasonHelp = "A-ASSOCIATE-RJ reason/diagnostic of the last run (PS3.8 Table 9-21).";
constexpr const char* kMatchesHelp = kFindMatchesHelp;
constexpr const char* kFindFirstHelp = "Time from the C-FIND request to its first response in the last run.";
constexpr const char* kItemsHelp = "Modality worklist items returned in the last run.";
constexpr const char* kCertHelp = "notAfter of the peer's TLS certificate, as a Unix timestamp.";

const std::vector<std::string>& transfer_syntaxes() {
  static const std::vector<std::string> ts = {UID_LittleEndianExplicitTransferSyntax,
                                              UID_LittleEndianImplicitTransferSyntax};
  return ts;
}

std::string ms(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", seconds * 1000);
  return buf;
}

}  // namespace

void add_association_samples(ProbeResult& r, const DicomAssociation& a) {
  const auto& t = a.times();
  auto phase = [&](const char* name, const std::optional<double>& v) {
    if (v) r.add("pacs_dicom_phase_duration_seconds", kPhaseHelp, *v, {{"phase", name}});
  };
  phase("connect", t.connect);
  phase("associate", t.associate);
  phase("dimse", t.dimse);
  phase("release", t.release);
  if (const auto& rj = a.reject()) {
    r.add("pacs_dicom_association_reject_result", kRejectResultHelp, rj->result);
    r.add("pacs_dicom_association_reject_source", kRejectSourceHelp, rj->source);
    r.add("pacs_dicom_association_reject_reason", kRejectReasonHelp, rj->dcmtk_reason & 0xff);
  }
  if (auto na = a.peer_cert_not_after()) r.add("pacs_dicom_tls_cert_expiry_timestamp_seconds", kCertHelp, *na);
}

namespace {

ProbeResult finish(ProbeResult r, const DicomAssociation& a) {
  add_association_samples(r, a);
  return r;
}

ProbeResult failed(const Failure& f, const DicomAssociation& a) {
  return finish(ProbeResult::fail(f.reason, f.message), a);
}

std::string status_hex(unsigned status) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04X", status);
  return buf;
}

// Attributes that live inside the Scheduled Procedure Step Sequence item of
// a Modality Worklist query (PS3.4 K.6.1.2.2).
bool in_sps_item(const DcmTagKey& k) {
  static const std::set<DcmTagKey> sps = {
      DCM_ScheduledStationAETitle,        DCM_ScheduledProcedureStepStartDate,
      DCM_ScheduledProcedureStepStartTime, DCM_Modality,
      DCM_ScheduledPerformingPhysicianName, DCM_ScheduledProcedureStepDescription,
      DCM_ScheduledStationName,           DCM_ScheduledProcedureStepLocation,
      DCM_ScheduledProcedureStepID,       DCM_ScheduledProcedureStepStatus,
  };
  return sps.count(k) > 0;
}

bool put_key(DcmItem& item, const QueryKey& k, const std::string& today) {
  DcmTag tag;
  if (DcmTag::findTagFromName(k.keyword.c_str(), tag).bad()) return false;
  return item.putAndInsertString(tag, expand_value(k.value, today).c_str()).good();
}

struct CanaryFindState {
  Clock::time_point sent;
  std::optional<double> first_response;
  int pending = 0;
  FindTally* tally = nullptr;  // group_by: where the grouping values go
  DcmTagKey group_tag;         // ModalitiesInStudy or Modality
};

// Called for every pending response. Without group_by the identifier is
// never read; with it, exactly three attributes are: the grouping one,
// StudyDate and StudyTime (find_groups.h). Nothing else (PHI) is touched.
void on_find_response(void* data, T_DIMSE_C_FindRQ*, int, T_DIMSE_C_FindRSP*, DcmDataset* ids) {
  auto* st = static_cast<CanaryFindState*>(data);
  if (!st->first_response) st->first_response = std::chrono::duration<double>(Clock::now() - st->sent).count();
  ++st->pending;
  if (!st->tally) return;
  std::vector<std::string> values;
  OFString date, time;
  if (ids) {
    OFString v;
    for (unsigned long i = 0; ids->findAndGetOFString(st->group_tag, v, i).good(); ++i) values.emplace_back(v.c_str());
    ids->findAndGetOFString(DCM_StudyDate, date);
    ids->findAndGetOFString(DCM_StudyTime, time);
  }
  st->tally->add(values, date.c_str(), time.c_str());
}

// The level's name and unique key (an empty return key: one response per match).
const char* level_name(FindOptions::Level l) {
  switch (l) {
    case FindOptions::Level::patient: return "PATIENT";
    case FindOptions::Level::study: return "STUDY";
    case FindOptions::Level::series: return "SERIES";
  }
  return "STUDY";
}
DcmTagKey level_unique_key(FindOptions::Level l) {
  switch (l) {
    case FindOptions::Level::patient: return DCM_PatientID;
    case FindOptions::Level::study: return DCM_StudyInstanceUID;
    case FindOptions::Level::series: return DCM_SeriesInstanceUID;
  }
  return DCM_StudyInstanceUID;
}

}  // namespace

ProbeResult DicomProbe::run(const ProbeContext& ctx) {
  try {
    switch (check_) {
      case Check::store: return run_store(opts_, ctx, pending_);
      case Check::retrieve: return run_retrieve(opts_, ctx, pending_);
      case Check::commit: return run_commit(opts_, ctx, pending_);
      case Check::access: return run_access(opts_, ctx);
      default: return run_association_check(ctx);
    }
  } catch (const std::exception& e) {
    // DCMTK or the canary builder failed locally; the framework would say
    // "internal" too, but without the transcript step.
    ctx.note("result", std::string("internal: ") + e.what());
    throw;
  }
}

ProbeResult DicomProbe::run_association_check(const ProbeContext& ctx) {
  std::string sop;
  if (check_ == Check::echo) sop = UID_VerificationSOPClass;
  else if (check_ == Check::worklist) sop = UID_FINDModalityWorklistInformationModel;
  else if (opts_.find.model == FindOptions::Model::patient_root) sop = UID_FINDPatientRootQueryRetrieveInformationModel;
  else sop = UID_FINDStudyRootQueryRetrieveInformationModel;

  AssociationSettings s;
  s.host = opts_.host;
  s.port = opts_.port;
  s.calling_ae_title = opts_.calling_ae_title;
  s.called_ae_title = opts_.called_ae_title;
  s.contexts = {{sop, transfer_syntaxes()}};
  s.tls = opts_.tls ? &*opts_.tls : nullptr;
  s.transcript = ctx.transcript;

  auto fail_with = [&](const Failure& f, const DicomAssociation& a) {
    ctx.note("result", std::string(to_string(f.reason)) + ": " + f.message);
    return failed(f, a);
  };
  DicomAssociation a(std::move(s), ctx.deadline);
  if (auto f = a.open()) return fail_with(*f, a);
  T_ASC_PresentationContextID pcid = a.accepted_context(sop);
  if (pcid == 0) {
    a.abort();
    return fail_with({Reason::association_rejected, "presentation context for the SOP class was not accepted"}, a);
  }

  ProbeResult r = ProbeResult::ok();
  unsigned status = 0;
  std::string what;
  std::string service;
  if (check_ == Check::echo) {
    what = service = "C-ECHO";
    DIC_US st = 0;
    DcmDataset* detail = nullptr;
    const DIC_US id = a.get()->nextMsgID++;
    ctx.note("C-ECHO-RQ", "message ID " + std::to_string(id));
    a.begin_dimse();
    OFCondition cond = DIMSE_echoUser(a.get(), id, DIMSE_NONBLOCKING, a.timeout_seconds(), &st, &detail);
    a.end_dimse();
    delete detail;
    if (cond.bad()) return fail_with(a.failure(cond, what), a);
    status = st;
    ctx.note("C-ECHO-RSP", "status " + status_text(service, status) + " after " + ms(a.times().dimse.value_or(0)));
  } else {
    what = check_ == Check::find ? "C-FIND" : "worklist C-FIND";
    service = "C-FIND";
    DcmDataset query;
    std::string today = today_dicom_date();
    bool ok = true;
    std::string keys;
    const DcmTagKey group_tag =
        opts_.find.group_by == FindOptions::GroupBy::modality ? DCM_Modality : DCM_ModalitiesInStudy;
    if (check_ == Check::find) {
      ok = query.putAndInsertString(DCM_QueryRetrieveLevel, level_name(opts_.find.level)).good();
      for (const auto& k : opts_.find.keys) {
        ok = ok && put_key(query, k, today);
        keys += (keys.empty() ? "" : ", ") + k.keyword;
      }
      // The level's unique key as an empty return key: one response per match;
      // with group_by, the three return keys the grouping reads (unless they
      // are matching keys already).
      std::vector<DcmTagKey> returns = {level_unique_key(opts_.find.level)};
      if (opts_.find.group_by != FindOptions::GroupBy::none) {
        returns.push_back(group_tag);
        returns.push_back(DCM_StudyDate);
        returns.push_back(DCM_StudyTime);
      }
      for (const auto& k : returns)
        if (ok && !query.tagExists(k)) ok = query.insertEmptyElement(k).good();
      ctx.note("C-FIND-RQ", std::string(opts_.find.model == FindOptions::Model::patient_root ? "Patient Root"
                                                                                              : "Study Root") +
                                ", level " + level_name(opts_.find.level) +
                                ", keys: " + (keys.empty() ? std::string("none") : keys) +
                                (opts_.find.group_by == FindOptions::GroupBy::none
                                     ? std::string()
                                     : std::string(", grouped by ") +
                                           (opts_.find.group_by == FindOptions::GroupBy::modality
                                                ? "Modality"
                                                : "ModalitiesInStudy")));
    } else {
      DcmItem* sps = nullptr;
      ok = query.findOrCreateSequenceItem(DCM_ScheduledProcedureStepSequence, sps, -2).good() && sps;
      for (const auto& k : opts_.worklist.keys) {
        if (!ok) break;
        DcmTag tag;
        DcmTag::findTagFromName(k.keyword.c_str(), tag);
        ok = put_key(in_sps_item(tag) ? *sps : static_cast<DcmItem&>(query), k, today);
        keys += (keys.empty() ? "" : ", ") + k.keyword;
      }
      if (ok && !sps->tagExists(DCM_ScheduledProcedureStepID)) ok = sps->insertEmptyElement(DCM_ScheduledProcedureStepID).good();
      ctx.note("C-FIND-RQ", "Modality Worklist, keys: " + (keys.empty() ? std::string("none") : keys));
    }
    if (!ok) {
      a.abort();
      return fail_with({Reason::internal, "cannot build the " + what + " identifier"}, a);
    }
    T_DIMSE_C_FindRQ req{};
    req.MessageID = a.get()->nextMsgID++;
    OFStandard::strlcpy(req.AffectedSOPClassUID, sop.c_str(), sizeof req.AffectedSOPClassUID);
    req.DataSetType = DIMSE_DATASET_PRESENT;
    req.Priority = DIMSE_PRIORITY_MEDIUM;
    T_DIMSE_C_FindRSP rsp{};
    DcmDataset* detail = nullptr;
    CanaryFindState st;
    FindTally tally;
    if (check_ == Check::find && opts_.find.group_by != FindOptions::GroupBy::none) {
      st.tally = &tally;
      st.group_tag = group_tag;
    }
    int count = 0;
    a.begin_dimse();
    st.sent = Clock::now();
    OFCondition cond = DIMSE_findUser(a.get(), pcid, &req, &query, count, on_find_response, &st, DIMSE_NONBLOCKING,
                                      a.timeout_seconds(), &rsp, &detail);
    auto done = Clock::now();
    a.end_dimse();
    delete detail;
    if (cond.bad()) return fail_with(a.failure(cond, what), a);
    status = rsp.DimseStatus;
    double first = st.first_response.value_or(std::chrono::duration<double>(done - st.sent).count());
    ctx.note("C-FIND-RSP", std::to_string(st.pending) + " pending, final status " + status_text(service, status) +
                               "; first response after " + ms(first) + ", last after " +
                               ms(std::chrono::duration<double>(done - st.sent).count()));
    if (check_ == Check::find) {
      if (st.tally) {
        double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
        add_group_samples(r, tally, seen_groups_, now);
        if (ctx.tracing()) {  // group names are modality codes, "other" or "none": no PHI
          std::string groups;
          for (const auto& [g, n] : tally.counts()) groups += (groups.empty() ? "" : ", ") + g + " " + std::to_string(n);
          ctx.note("groups", groups.empty() ? std::string("none matched") : groups);
        }
      } else {
        r.add("pacs_dicom_find_matches", kMatchesHelp, st.pending);
      }
      r.add("pacs_dicom_find_first_response_seconds", kFindFirstHelp, first);
    } else {
      r.add("pacs_dicom_worklist_items", kItemsHelp, st.pending);
    }
    r.message = what + " " + std::to_string(st.pending) + (check_ == Check::find ? " matches" : " items");
  }
  r.add("pacs_dicom_dimse_status", kDimseStatusHelp, status);
  if (status != 0) {
    a.release();  // the exchange itself was orderly: end it politely; the status is the failure
    Failure f{Reason::dimse_status, what + " returned status " + status_hex(status)};
    ctx.note("result", std::string(to_string(f.reason)) + ": " + f.message);
    auto res = finish(ProbeResult::fail(f.reason, f.message), a);
    for (auto& smp : r.samples) res.samples.push_back(std::move(smp));
    return res;
  }
  if (auto f = a.release()) {
    auto res = fail_with(*f, a);
    for (auto& smp : r.samples) res.samples.push_back(std::move(smp));
    return res;
  }
  const auto& t = a.times();
  if (r.message.empty()) r.message = what + " ok";
  r.message += " in " + ms(t.connect.value_or(0) + t.associate.value_or(0) + t.dimse.value_or(0) +
                           t.release.value_or(0)) + " (dimse " + ms(t.dimse.value_or(0)) + ")";
  return finish(std::move(r), a);
}

}  // namespace pacs::dicom
