#include "probes/dicom/dimse_ops.h"

#include <cstdio>
#include <cstring>

#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcitem.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/diutil.h"
#include "dcmtk/ofstd/ofstd.h"

namespace pacs::dicom {

std::string hex4(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%04X", v & 0xffff);
  return buf;
}

std::string ms_text(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", seconds * 1000);
  return buf;
}

std::string status_text(const std::string& service, unsigned status) {
  auto st = static_cast<Uint16>(status);
  const char* t = nullptr;
  if (service == "C-STORE") t = DU_cstoreStatusString(st);
  else if (service == "C-FIND") t = DU_cfindStatusString(st);
  else if (service == "C-GET") t = DU_cgetStatusString(st);
  else if (service == "C-MOVE") t = DU_cmoveStatusString(st);
  else if (service == "C-ECHO") t = DU_cechoStatusString(st);
  else if (service == "N-ACTION") t = DU_nactionStatusString(st);
  else if (service == "N-EVENT-REPORT") t = DU_neventReportStatusString(st);
  return hex4(status) + " (" + (t ? t : "unknown") + ")";
}

const std::vector<std::string>& plain_transfer_syntaxes() {
  static const std::vector<std::string> ts = {UID_LittleEndianExplicitTransferSyntax,
                                              UID_LittleEndianImplicitTransferSyntax};
  return ts;
}

namespace {

void count_bytes(void* ctx, unsigned long bytes) { *static_cast<unsigned long*>(ctx) = bytes; }

std::string string_of(DcmItem& item, const DcmTagKey& tag) {
  OFString v;
  if (item.findAndGetOFStringArray(tag, v).bad()) return {};
  return v.c_str();
}

OFCondition answer_store(T_ASC_Association* assoc, T_ASC_PresentationContextID pcid, const T_DIMSE_C_StoreRQ& req,
                         unsigned status) {
  T_DIMSE_C_StoreRSP rsp{};
  rsp.DimseStatus = static_cast<DIC_US>(status);
  rsp.DataSetType = DIMSE_DATASET_NULL;
  OFStandard::strlcpy(rsp.AffectedSOPInstanceUID, req.AffectedSOPInstanceUID, sizeof rsp.AffectedSOPInstanceUID);
  rsp.opts = O_STORE_AFFECTEDSOPINSTANCEUID;
  return DIMSE_sendStoreResponse(assoc, pcid, &req, &rsp, nullptr);
}

}  // namespace

OFCondition receive_store(T_ASC_Association* assoc, T_ASC_PresentationContextID pcid, const T_DIMSE_C_StoreRQ& req,
                          const InstanceFilter& filter, Received& out, int timeout_seconds) {
  // The command names the instance: a canary run refuses every other one
  // without parsing it (it may be anybody's image).
  if (filter.canary && filter.canary->uids().instance != req.AffectedSOPInstanceUID) {
    DIC_UL bytes = 0, pdvs = 0;
    OFCondition c = DIMSE_ignoreDataSet(assoc, DIMSE_NONBLOCKING, timeout_seconds, &bytes, &pdvs);
    if (c.bad()) return c;
    ++out.refused;
    return answer_store(assoc, pcid, req, STATUS_STORE_Refused_NotAuthorized);
  }
  DcmDataset* ds = nullptr;
  unsigned long bytes = 0;
  T_ASC_PresentationContextID data_pcid = pcid;
  OFCondition c = DIMSE_receiveDataSetInMemory(assoc, DIMSE_NONBLOCKING, timeout_seconds, &data_pcid, &ds,
                                               &count_bytes, &bytes);
  std::unique_ptr<DcmDataset> owned(ds);
  if (c.bad()) return c;
  unsigned status = STATUS_STORE_Success;
  if (filter.canary) {
    auto diff = filter.canary->differences(*owned);
    if (!diff.empty()) {
      if (out.mismatched++ == 0) out.differences = diff;
    } else {
      ++out.accepted;
      out.bytes += static_cast<double>(bytes);
      if (!out.first) out.first = Clock::now();
    }
  } else if (!filter.study_uid.empty() && string_of(*owned, DCM_StudyInstanceUID) == filter.study_uid) {
    ++out.accepted;
    out.bytes += static_cast<double>(bytes);
    if (!out.first) out.first = Clock::now();
  } else {
    ++out.refused;
    status = STATUS_STORE_Refused_NotAuthorized;
  }
  owned.reset();  // dropped: nothing of it is kept
  return answer_store(assoc, pcid, req, status);
}

OFCondition receive_event_report(T_ASC_Association* assoc, T_ASC_PresentationContextID pcid,
                                 const T_DIMSE_N_EventReportRQ& req, const std::string& transaction_uid,
                                 const std::string& sop_instance_uid, CommitReport& out, bool& ours,
                                 int timeout_seconds) {
  ours = false;
  std::unique_ptr<DcmDataset> ds;
  if (req.DataSetType != DIMSE_DATASET_NULL) {
    DcmDataset* raw = nullptr;
    T_ASC_PresentationContextID data_pcid = pcid;
    OFCondition c = DIMSE_receiveDataSetInMemory(assoc, DIMSE_NONBLOCKING, timeout_seconds, &data_pcid, &raw, nullptr,
                                                 nullptr);
    ds.reset(raw);
    if (c.bad()) return c;
  }
  if (ds && string_of(*ds, DCM_TransactionUID) == transaction_uid) {
    ours = true;
    CommitReport r;
    r.at = Clock::now();
    r.event_type = req.EventTypeID;
    r.transaction_matches = true;
    auto scan = [&](const DcmTagKey& seq_tag, int& count, bool& found, bool failed_list) {
      DcmSequenceOfItems* seq = nullptr;
      if (ds->findAndGetSequence(seq_tag, seq).bad() || !seq) return;
      count = static_cast<int>(seq->card());
      for (unsigned long i = 0; i < seq->card(); ++i) {
        DcmItem* item = seq->getItem(i);
        if (!item || string_of(*item, DCM_ReferencedSOPInstanceUID) != sop_instance_uid) continue;
        found = true;
        if (failed_list) {
          Uint16 fr = 0;
          if (item->findAndGetUint16(DCM_FailureReason, fr).good()) r.failure_reason = fr;
        }
      }
    };
    scan(DCM_ReferencedSOPSequence, r.referenced, r.ours_committed, false);
    scan(DCM_FailedSOPSequence, r.failed, r.ours_failed, true);
    out = r;
  }
  T_DIMSE_Message rsp{};
  rsp.CommandField = DIMSE_N_EVENT_REPORT_RSP;
  auto& e = rsp.msg.NEventReportRSP;
  e.MessageIDBeingRespondedTo = req.MessageID;
  e.DimseStatus = STATUS_N_Success;
  e.DataSetType = DIMSE_DATASET_NULL;
  OFStandard::strlcpy(e.AffectedSOPClassUID, req.AffectedSOPClassUID, sizeof e.AffectedSOPClassUID);
  OFStandard::strlcpy(e.AffectedSOPInstanceUID, req.AffectedSOPInstanceUID, sizeof e.AffectedSOPInstanceUID);
  e.EventTypeID = req.EventTypeID;
  e.opts = O_NEVENTREPORT_AFFECTEDSOPCLASSUID | O_NEVENTREPORT_AFFECTEDSOPINSTANCEUID | O_NEVENTREPORT_EVENTTYPEID;
  return DIMSE_sendMessageUsingMemoryData(assoc, pcid, &rsp, nullptr, nullptr, nullptr, nullptr);
}

namespace {

struct UidFindState {
  const std::string* expect = nullptr;
  FindResult* out = nullptr;
};

// Reads only the SOPInstanceUID of a response (and only when asked), to
// compare it; nothing else of the identifiers is looked at.
void on_find(void* data, T_DIMSE_C_FindRQ*, int, T_DIMSE_C_FindRSP*, DcmDataset* ids) {
  auto* st = static_cast<UidFindState*>(data);
  ++st->out->matches;
  if (st->expect->empty() || !ids) return;
  if (string_of(*ids, DCM_SOPInstanceUID) == *st->expect) st->out->uid_seen = true;
  else st->out->other_uid = true;
}

}  // namespace

std::optional<Failure> find(DicomAssociation& a, T_ASC_PresentationContextID pcid, const std::string& sop_class,
                            DcmDataset& query, const std::string& expect_uid, FindResult& out,
                            const std::string& what, Transcript* transcript) {
  T_DIMSE_C_FindRQ req{};
  req.MessageID = a.get()->nextMsgID++;
  OFStandard::strlcpy(req.AffectedSOPClassUID, sop_class.c_str(), sizeof req.AffectedSOPClassUID);
  req.DataSetType = DIMSE_DATASET_PRESENT;
  req.Priority = DIMSE_PRIORITY_MEDIUM;
  T_DIMSE_C_FindRSP rsp{};
  DcmDataset* detail = nullptr;
  UidFindState st{&expect_uid, &out};
  int count = 0;
  auto t0 = Clock::now();
  OFCondition cond = DIMSE_findUser(a.get(), pcid, &req, &query, count, &on_find, &st, DIMSE_NONBLOCKING,
                                    a.timeout_seconds(), &rsp, &detail);
  delete detail;
  if (cond.bad()) {
    auto f = a.failure(cond, "C-FIND");
    if (transcript) transcript->add("C-FIND-RSP", std::string(to_string(f.reason)) + ": " + f.message);
    return f;
  }
  out.status = rsp.DimseStatus;
  if (transcript) {
    transcript->add("C-FIND-RSP", what + ": " + std::to_string(out.matches) + " pending, final status " +
                                      status_text("C-FIND", out.status) + " after " +
                                      ms_text(std::chrono::duration<double>(Clock::now() - t0).count()));
  }
  return std::nullopt;
}

}  // namespace pacs::dicom
