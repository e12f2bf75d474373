// A small scripted archive for the image checks' misbehaviours no real
// archive here offers: it accepts C-STORE and keeps the objects in memory,
// answers C-FIND (IMAGE level by SOPInstanceUID, STUDY level by PatientID),
// C-GET (sending the stored objects back on the same association) and
// storage commitment (N-ACTION, then the N-EVENT-REPORT on the same
// association). Modes make it lie in one way each.
//
// It listens on 127.0.0.1 only (its own socket, handed to DCMTK's acceptor
// under the agent's external_socket_mutex()), serves one association at a
// time on one thread, and is stopped and joined by its destructor.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcsequen.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/assoc.h"
#include "dcmtk/dcmnet/dimse.h"
#include "dcmtk/dcmnet/dul.h"
#include "dcmtk/ofstd/ofstd.h"

#include "probes/dicom/storage_scp.h"

namespace pacs::dicom::peers {

class MiniPacs {
 public:
  enum class Mode {
    honest,          // stores, finds, returns, commits
    hide_stored,     // answers C-STORE with success, but C-FIND never finds anything
    corrupt_get,     // C-GET returns the object with one pixel changed
    commit_failure,  // storage commitment: N-EVENT-REPORT lists the object as failed (0x0112)
    commit_silent,   // storage commitment: N-ACTION-RSP success, then no report at all
    store_full,      // C-STORE answered 0xA700 (out of resources)
  };

  explicit MiniPacs(Mode m, std::string aet = "MINIPACS") : mode_(m), aet_(std::move(aet)) {
    lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd_, 8) != 0) {
      throw std::runtime_error("MiniPacs: bind/listen failed");
    }
    socklen_t len = sizeof a;
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("MiniPacs: pipe");
    thread_ = std::thread([this] { serve(); });
  }
  ~MiniPacs() {
    stop_ = true;
    char c = 1;
    (void)!::write(wake_[1], &c, 1);
    thread_.join();
    ::close(lfd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }
  MiniPacs(const MiniPacs&) = delete;
  MiniPacs& operator=(const MiniPacs&) = delete;

  int port() const { return port_; }
  const std::string& aet() const { return aet_; }
  int stored() {
    std::lock_guard lk(mu_);
    return static_cast<int>(objects_.size());
  }
  int commit_requests() const { return commit_requests_; }

 private:
  static std::string str(DcmItem& d, const DcmTagKey& t) {
    OFString v;
    d.findAndGetOFStringArray(t, v);
    return v.c_str();
  }

  void serve() {
    while (!stop_) {
      pollfd p[2] = {{lfd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(p, 2, 1000) <= 0) continue;
      if (p[1].revents) return;
      int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) handle(fd);
    }
  }

  void handle(int fd) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) {
      ::close(fd);
      return;
    }
    T_ASC_Network* net = nullptr;
    T_ASC_Association* assoc = nullptr;
    OFCondition cond;
    {
      std::lock_guard lk(external_socket_mutex());
      dcmExternalSocketHandle.set(fd);
      cond = ASC_initializeNetwork(NET_ACCEPTOR, 0, 5, &net);
      if (cond.good()) cond = ASC_receiveAssociation(net, &assoc, ASC_DEFAULTMAXPDU, nullptr, nullptr, OFFalse, DUL_NOBLOCK, 5);
      dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
    }
    if (cond.good()) {
      const char* ts[] = {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax};
      int n = ASC_countPresentationContexts(assoc->params);
      for (int i = 0; i < n; ++i) {
        T_ASC_PresentationContext pc;
        ASC_getPresentationContext(assoc->params, i, &pc);
        std::string as = pc.abstractSyntax;
        if (as == UID_SecondaryCaptureImageStorage || as == UID_FINDStudyRootQueryRetrieveInformationModel ||
            as == UID_GETStudyRootQueryRetrieveInformationModel || as == UID_StorageCommitmentPushModelSOPClass ||
            as == UID_VerificationSOPClass) {
          for (const char* t : ts) {
            bool offered = false;
            for (int k = 0; k < pc.transferSyntaxCount; ++k) offered = offered || std::string(pc.proposedTransferSyntaxes[k]) == t;
            if (offered) {
              ASC_acceptPresentationContext(assoc->params, pc.presentationContextID, t, pc.proposedRole);
              break;
            }
          }
        }
      }
      if (ASC_acknowledgeAssociation(assoc).good()) commands(assoc);
    }
    if (assoc) {
      ASC_dropSCPAssociation(assoc, 1);
      ASC_destroyAssociation(&assoc);
    }
    if (net) ASC_dropNetwork(&net);
  }

  void commands(T_ASC_Association* assoc) {
    while (!stop_) {
      T_ASC_PresentationContextID pcid = 0;
      T_DIMSE_Message msg{};
      OFCondition cond = DIMSE_receiveCommand(assoc, DIMSE_NONBLOCKING, 5, &pcid, &msg, nullptr);
      if (cond == DUL_PEERREQUESTEDRELEASE) {
        ASC_acknowledgeRelease(assoc);
        return;
      }
      if (cond == DIMSE_NODATAAVAILABLE) continue;
      if (cond.bad()) return;
      switch (msg.CommandField) {
        case DIMSE_C_ECHO_RQ: DIMSE_sendEchoResponse(assoc, pcid, &msg.msg.CEchoRQ, STATUS_Success, nullptr); break;
        case DIMSE_C_STORE_RQ: store(assoc, pcid, msg.msg.CStoreRQ); break;
        case DIMSE_C_FIND_RQ: find(assoc, pcid, msg.msg.CFindRQ); break;
        case DIMSE_C_GET_RQ: get(assoc, pcid, msg.msg.CGetRQ); break;
        case DIMSE_N_ACTION_RQ: commit(assoc, pcid, msg.msg.NActionRQ); break;
        default: ASC_abortAssociation(assoc); return;
      }
    }
  }

  std::unique_ptr<DcmDataset> receive(T_ASC_Association* assoc, T_ASC_PresentationContextID pcid) {
    DcmDataset* ds = nullptr;
    DIMSE_receiveDataSetInMemory(assoc, DIMSE_NONBLOCKING, 5, &pcid, &ds, nullptr, nullptr);
    return std::unique_ptr<DcmDataset>(ds);
  }

  void store(T_ASC_Association* assoc, T_ASC_PresentationContextID pcid, T_DIMSE_C_StoreRQ& req) {
    auto ds = receive(assoc, pcid);
    T_DIMSE_C_StoreRSP rsp{};
    rsp.DimseStatus = mode_ == Mode::store_full ? STATUS_STORE_Refused_OutOfResources : STATUS_Success;
    rsp.DataSetType = DIMSE_DATASET_NULL;
    OFStandard::strlcpy(rsp.AffectedSOPInstanceUID, req.AffectedSOPInstanceUID, sizeof rsp.AffectedSOPInstanceUID);
    rsp.opts = O_STORE_AFFECTEDSOPINSTANCEUID;
    if (ds && mode_ != Mode::store_full) {
      std::lock_guard lk(mu_);
      objects_.push_back(std::move(ds));
    }
    DIMSE_sendStoreResponse(assoc, pcid, &req, &rsp, nullptr);
  }

  void find(T_ASC_Association* assoc, T_ASC_PresentationContextID pcid, T_DIMSE_C_FindRQ& req) {
    auto q = receive(assoc, pcid);
    std::vector<std::unique_ptr<DcmDataset>> answers;
    if (q && mode_ != Mode::hide_stored) {
      std::lock_guard lk(mu_);
      std::string level = str(*q, DCM_QueryRetrieveLevel);
      for (auto& o : objects_) {
        bool match = level == "IMAGE" ? str(*o, DCM_SOPInstanceUID) == str(*q, DCM_SOPInstanceUID)
                                      : str(*o, DCM_PatientID) == str(*q, DCM_PatientID);
        if (!match) continue;
        auto a = std::make_unique<DcmDataset>();
        a->putAndInsertString(DCM_QueryRetrieveLevel, level.c_str());
        a->putAndInsertString(DCM_StudyInstanceUID, str(*o, DCM_StudyInstanceUID).c_str());
        if (level == "IMAGE") a->putAndInsertString(DCM_SOPInstanceUID, str(*o, DCM_SOPInstanceUID).c_str());
        answers.push_back(std::move(a));
      }
    }
    T_DIMSE_C_FindRSP rsp{};
    for (auto& a : answers) {
      rsp.DimseStatus = STATUS_Pending;
      DIMSE_sendFindResponse(assoc, pcid, &req, &rsp, a.get(), nullptr);
    }
    rsp.DimseStatus = STATUS_Success;
    DIMSE_sendFindResponse(assoc, pcid, &req, &rsp, nullptr, nullptr);
  }

  void get(T_ASC_Association* assoc, T_ASC_PresentationContextID pcid, T_DIMSE_C_GetRQ& req) {
    auto q = receive(assoc, pcid);
    std::vector<std::unique_ptr<DcmDataset>> out;
    {
      std::lock_guard lk(mu_);
      for (auto& o : objects_) {
        if (q && str(*o, DCM_StudyInstanceUID) == str(*q, DCM_StudyInstanceUID)) {
          out.push_back(std::make_unique<DcmDataset>(*o));
        }
      }
    }
    unsigned completed = 0, failed = 0;
    T_ASC_PresentationContextID spc = ASC_findAcceptedPresentationContextID(assoc, UID_SecondaryCaptureImageStorage);
    for (auto& o : out) {
      if (mode_ == Mode::corrupt_get) {
        const Uint8* px = nullptr;
        o->findAndGetUint8Array(DCM_PixelData, px);
        DcmElement* e = nullptr;
        if (o->findAndGetElement(DCM_PixelData, e).good() && e) {
          std::vector<Uint8> copy(px, px + e->getLength());
          copy[3] ^= 0x5a;  // what a half-written file or a broken disk returns
          o->putAndInsertUint8Array(DCM_PixelData, copy.data(), static_cast<unsigned long>(copy.size()));
        }
      }
      T_DIMSE_C_StoreRQ sreq{};
      sreq.MessageID = assoc->nextMsgID++;
      OFStandard::strlcpy(sreq.AffectedSOPClassUID, str(*o, DCM_SOPClassUID).c_str(), sizeof sreq.AffectedSOPClassUID);
      OFStandard::strlcpy(sreq.AffectedSOPInstanceUID, str(*o, DCM_SOPInstanceUID).c_str(),
                          sizeof sreq.AffectedSOPInstanceUID);
      sreq.DataSetType = DIMSE_DATASET_PRESENT;
      sreq.Priority = DIMSE_PRIORITY_MEDIUM;
      T_DIMSE_C_StoreRSP srsp{};
      DcmDataset* detail = nullptr;
      OFCondition c = DIMSE_storeUser(assoc, spc, &sreq, nullptr, o.get(), nullptr, nullptr, DIMSE_NONBLOCKING, 5, &srsp,
                                      &detail);
      delete detail;
      if (c.good() && srsp.DimseStatus == STATUS_Success) ++completed;
      else ++failed;
    }
    T_DIMSE_C_GetRSP rsp{};
    rsp.DimseStatus = failed ? STATUS_GET_Warning_SubOperationsCompleteOneOrMoreFailures : STATUS_Success;
    rsp.NumberOfRemainingSubOperations = 0;
    rsp.NumberOfCompletedSubOperations = static_cast<DIC_US>(completed);
    rsp.NumberOfFailedSubOperations = static_cast<DIC_US>(failed);
    rsp.NumberOfWarningSubOperations = 0;
    DIMSE_sendGetResponse(assoc, pcid, &req, &rsp, nullptr, nullptr);
  }

  void commit(T_ASC_Association* assoc, T_ASC_PresentationContextID pcid, T_DIMSE_N_ActionRQ& req) {
    ++commit_requests_;
    auto ds = receive(assoc, pcid);
    T_DIMSE_Message rsp{};
    rsp.CommandField = DIMSE_N_ACTION_RSP;
    auto& a = rsp.msg.NActionRSP;
    a.MessageIDBeingRespondedTo = req.MessageID;
    a.DimseStatus = STATUS_Success;
    a.DataSetType = DIMSE_DATASET_NULL;
    OFStandard::strlcpy(a.AffectedSOPClassUID, req.RequestedSOPClassUID, sizeof a.AffectedSOPClassUID);
    OFStandard::strlcpy(a.AffectedSOPInstanceUID, req.RequestedSOPInstanceUID, sizeof a.AffectedSOPInstanceUID);
    a.ActionTypeID = req.ActionTypeID;
    a.opts = O_NACTION_AFFECTEDSOPCLASSUID | O_NACTION_AFFECTEDSOPINSTANCEUID | O_NACTION_ACTIONTYPEID;
    DIMSE_sendMessageUsingMemoryData(assoc, pcid, &rsp, nullptr, nullptr, nullptr, nullptr);
    if (mode_ == Mode::commit_silent || !ds) return;
    // The report, on this association.
    DcmDataset report;
    report.putAndInsertString(DCM_TransactionUID, str(*ds, DCM_TransactionUID).c_str());
    DcmSequenceOfItems* refs = nullptr;
    ds->findAndGetSequence(DCM_ReferencedSOPSequence, refs, false, false);
    const bool fail = mode_ == Mode::commit_failure;
    for (unsigned long i = 0; refs && i < refs->card(); ++i) {
      DcmItem* item = nullptr;
      report.findOrCreateSequenceItem(fail ? DCM_FailedSOPSequence : DCM_ReferencedSOPSequence, item, -2);
      item->putAndInsertString(DCM_ReferencedSOPClassUID, str(*refs->getItem(i), DCM_ReferencedSOPClassUID).c_str());
      item->putAndInsertString(DCM_ReferencedSOPInstanceUID,
                               str(*refs->getItem(i), DCM_ReferencedSOPInstanceUID).c_str());
      if (fail) item->putAndInsertUint16(DCM_FailureReason, 0x0112);
    }
    T_DIMSE_Message ev{};
    ev.CommandField = DIMSE_N_EVENT_REPORT_RQ;
    auto& e = ev.msg.NEventReportRQ;
    e.MessageID = assoc->nextMsgID++;
    OFStandard::strlcpy(e.AffectedSOPClassUID, UID_StorageCommitmentPushModelSOPClass, sizeof e.AffectedSOPClassUID);
    OFStandard::strlcpy(e.AffectedSOPInstanceUID, UID_StorageCommitmentPushModelSOPInstance,
                        sizeof e.AffectedSOPInstanceUID);
    e.DataSetType = DIMSE_DATASET_PRESENT;
    e.EventTypeID = fail ? 2 : 1;
    DIMSE_sendMessageUsingMemoryData(assoc, pcid, &ev, nullptr, &report, nullptr, nullptr);
    T_DIMSE_Message back{};
    T_ASC_PresentationContextID bpc = 0;
    DIMSE_receiveCommand(assoc, DIMSE_NONBLOCKING, 5, &bpc, &back, nullptr);
  }

  Mode mode_;
  std::string aet_;
  int lfd_ = -1, port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<int> commit_requests_{0};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::unique_ptr<DcmDataset>> objects_;
};

}  // namespace pacs::dicom::peers
