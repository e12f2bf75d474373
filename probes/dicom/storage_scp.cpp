#include "probes/dicom/storage_scp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/dcmlayer.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmnet/diutil.h"
#include "dcmtk/dcmnet/dul.h"
#include "probes/timed_lock.h"

namespace pacs::dicom {

using namespace std::chrono_literals;

namespace {

std::atomic<int> g_running{0};

// One lock per listen port for the whole process: runs that share a port
// take turns.
TimedLock& port_lock(int port) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<TimedLock>> locks;
  std::lock_guard lk(mu);
  auto& p = locks[port];
  if (!p) p = std::make_unique<TimedLock>();
  return *p;
}

int seconds_left(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<long long>(1, (ms + 999) / 1000));
}

// Records whether DCMTK took ownership of the accepted socket (it closes it
// from then on); until then it is ours to close.
class TakingLayer : public DcmTransportLayer {
 public:
  DcmTransportConnection* createConnection(DcmNativeSocketType s, OFBool secure) override {
    taken = true;
    return DcmTransportLayer::createConnection(s, secure);
  }
  bool taken = false;
};

std::string ae(const char* s) {
  std::string v = s ? s : "";
  while (!v.empty() && v.back() == ' ') v.pop_back();
  while (!v.empty() && v.front() == ' ') v.erase(0, 1);
  return v;
}

}  // namespace

std::mutex& external_socket_mutex() {
  static std::mutex mu;
  return mu;
}

int StorageScp::running_threads() { return g_running.load(); }

StorageScp::StorageScp(Settings s, Clock::time_point deadline) : s_(std::move(s)), deadline_(deadline) {}

StorageScp::~StorageScp() { stop(); }

void StorageScp::event(std::string step, std::string detail) {
  std::lock_guard lk(mu_);
  events_.push_back({Clock::now(), std::move(step), std::move(detail)});
}

std::optional<Failure> StorageScp::start() {
  const std::string where = s_.scp.listen_address + ":" + std::to_string(s_.scp.listen_port);
  if (!port_lock(s_.scp.listen_port).try_lock_until(deadline_)) {
    return Failure{Reason::inbound_timeout,
                   "the agent's SCP port " + where + " stayed in use by another run of this agent until the deadline"};
  }
  port_locked_ = true;
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Failure{Reason::io_error, std::string("socket: ") + std::strerror(errno)};
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(s_.scp.listen_port));
  if (::inet_pton(AF_INET, s_.scp.listen_address.c_str(), &a.sin_addr) != 1) {
    return Failure{Reason::internal, "listen address " + s_.scp.listen_address + " is not an IPv4 address"};
  }
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 8) != 0) {
    return Failure{Reason::io_error, "the agent's SCP cannot listen on " + where + ": " + std::strerror(errno)};
  }
  if (::pipe2(wake_, O_CLOEXEC) != 0) return Failure{Reason::io_error, std::string("pipe: ") + std::strerror(errno)};
  event("SCP", "listening on " + where + " as " + s_.scp.ae_title);
  ++g_running;
  thread_ = std::thread([this] {
    serve();
    --g_running;
  });
  return std::nullopt;
}

void StorageScp::stop() {
  stop_ = true;
  if (wake_[1] >= 0) {
    char c = 1;
    (void)!::write(wake_[1], &c, 1);
  }
  {
    std::lock_guard lk(mu_);
    if (current_) current_->shutdown_now();
  }
  if (thread_.joinable()) thread_.join();
  for (int* fd : {&listen_fd_, &wake_[0], &wake_[1]}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  if (port_locked_) {
    port_lock(s_.scp.listen_port).unlock();
    port_locked_ = false;
  }
}

StorageScp::State StorageScp::wait(const std::function<bool(const State&)>& done, Clock::time_point until) {
  std::unique_lock lk(mu_);
  cv_.wait_until(lk, until, [&] { return done(state_); });
  return state_;
}

StorageScp::State StorageScp::state() {
  std::lock_guard lk(mu_);
  return state_;
}

std::vector<StorageScp::Event> StorageScp::take_events() {
  std::lock_guard lk(mu_);
  std::vector<Event> out;
  out.swap(events_);
  return out;
}

void StorageScp::serve() {
  while (!stop_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    if (left <= 0) break;
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    int n = ::poll(p, 2, static_cast<int>(std::min<long long>(left, 1000)));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    if (p[1].revents) break;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    handle(fd);
  }
}

// One inbound association, start to end, bounded by the deadline.
void StorageScp::handle(int fd) {
  SocketDeadline guard(fd, deadline_);
  {
    std::lock_guard lk(mu_);
    current_ = &guard;
  }
  struct Clear {
    StorageScp* self;
    ~Clear() {
      std::lock_guard lk(self->mu_);
      self->current_ = nullptr;
    }
  } clear{this};
  if (stop_) {
    ::close(fd);
    return;
  }
  // Wait for the A-ASSOCIATE-RQ before taking the global: a slow peer must
  // not hold up other runs' SCPs.
  {
    pollfd p[2] = {{fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
    if (left <= 0 || ::poll(p, 2, static_cast<int>(left)) <= 0 || p[1].revents || !(p[0].revents & POLLIN)) {
      ::close(fd);
      event("inbound A-ASSOCIATE", "connection without an A-ASSOCIATE-RQ before the deadline");
      return;
    }
  }
  T_ASC_Network* net = nullptr;
  T_ASC_Association* assoc = nullptr;
  TakingLayer layer;
  OFCondition cond;
  {
    std::lock_guard lk(external_socket_mutex());
    dcmExternalSocketHandle.set(fd);
    cond = ASC_initializeNetwork(NET_ACCEPTOR, 0, seconds_left(deadline_), &net);
    if (cond.good()) cond = ASC_setTransportLayer(net, &layer, 0);
    if (cond.good()) {
      cond = ASC_receiveAssociation(net, &assoc, ASC_DEFAULTMAXPDU, nullptr, nullptr, OFFalse, DUL_NOBLOCK,
                                    seconds_left(deadline_));
    }
    dcmExternalSocketHandle.set(DCMNET_INVALID_SOCKET);
  }
  auto finish = [&] {
    if (assoc) {
      ASC_dropSCPAssociation(assoc, 1);
      ASC_destroyAssociation(&assoc);
    }
    if (net) ASC_dropNetwork(&net);
    if (!layer.taken) ::close(fd);
  };
  if (cond.bad()) {
    event("inbound A-ASSOCIATE", std::string("failed: ") + (cond.text() ? cond.text() : "?"));
    finish();
    return;
  }
  const std::string calling = ae(assoc->params->DULparams.callingAPTitle);
  const std::string called = ae(assoc->params->DULparams.calledAPTitle);
  if (called != s_.scp.ae_title) {
    T_ASC_RejectParameters rej{ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
                               ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED};
    ASC_rejectAssociation(assoc, &rej);
    event("inbound A-ASSOCIATE-RJ", calling + " -> " + called + ": called AE title is not " + s_.scp.ae_title);
    {
      std::lock_guard lk(mu_);
      ++state_.rejected;
    }
    cv_.notify_all();
    finish();
    return;
  }
  // Accept storage (the canary's SOP class, or any storage class for a
  // fixed study) and storage commitment reports, in the role proposed.
  int n = ASC_countPresentationContexts(assoc->params), accepted = 0;
  for (int i = 0; i < n; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc->params, i, &pc).bad()) continue;
    std::string as = pc.abstractSyntax;
    bool ok = as == kStorageCommitmentSopClass ? !s_.transaction_uid.empty()
              : s_.filter.canary               ? as == s_.filter.canary->sop_class_uid()
                                               : !s_.filter.study_uid.empty() && dcmIsaStorageSOPClassUID(as.c_str());
    if (!ok) continue;
    // Uncompressed when offered, else (a fixed study stored compressed) what
    // the peer offers first: we only count those bytes.
    std::string ts;
    for (const auto& want : plain_transfer_syntaxes())
      for (int t = 0; t < pc.transferSyntaxCount && ts.empty(); ++t)
        if (want == pc.proposedTransferSyntaxes[t]) ts = want;
    if (ts.empty() && s_.filter.canary == nullptr && pc.transferSyntaxCount > 0) ts = pc.proposedTransferSyntaxes[0];
    if (ts.empty()) continue;
    if (ASC_acceptPresentationContext(assoc->params, pc.presentationContextID, ts.c_str(), pc.proposedRole).good()) {
      ++accepted;
    }
  }
  if (accepted == 0) {
    T_ASC_RejectParameters rej{ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER, ASC_REASON_SU_NOREASON};
    ASC_rejectAssociation(assoc, &rej);
    event("inbound A-ASSOCIATE-RJ", calling + " -> " + called + ": no acceptable presentation context");
    {
      std::lock_guard lk(mu_);
      ++state_.rejected;
    }
    cv_.notify_all();
    finish();
    return;
  }
  if (ASC_acknowledgeAssociation(assoc).bad()) {
    event("inbound A-ASSOCIATE-AC", "could not be sent");
    finish();
    return;
  }
  event("inbound A-ASSOCIATE-AC", calling + " -> " + called + ", " + std::to_string(accepted) + " of " +
                                      std::to_string(n) + " presentation context(s) accepted");
  {
    std::lock_guard lk(mu_);
    ++state_.associations;
  }
  cv_.notify_all();

  while (!stop_) {
    T_ASC_PresentationContextID pcid = 0;
    T_DIMSE_Message msg{};
    DcmDataset* detail = nullptr;
    cond = DIMSE_receiveCommand(assoc, DIMSE_NONBLOCKING, seconds_left(deadline_), &pcid, &msg, &detail);
    delete detail;
    if (cond == DUL_PEERREQUESTEDRELEASE) {
      ASC_acknowledgeRelease(assoc);
      event("inbound A-RELEASE", "released by the peer");
      break;
    }
    if (cond.bad()) {
      event("inbound association", guard.fired() ? "cut at the deadline" : std::string("ended: ") + cond.text());
      ASC_abortAssociation(assoc);
      break;
    }
    if (msg.CommandField == DIMSE_C_STORE_RQ) {
      Received r;
      {
        std::lock_guard lk(mu_);
        r = state_.received;
      }
      int before_ok = r.accepted, before_refused = r.refused;
      cond = receive_store(assoc, pcid, msg.msg.CStoreRQ, s_.filter, r, seconds_left(deadline_));
      {
        std::lock_guard lk(mu_);
        state_.received = r;
      }
      cv_.notify_all();
      event("inbound C-STORE-RQ", r.accepted > before_ok ? "expected instance received, answered 0x0000"
                                  : r.refused > before_refused ? "unexpected instance refused unread, answered 0x0124"
                                                               : "expected SOP instance with different content");
      if (cond.bad()) {
        ASC_abortAssociation(assoc);
        break;
      }
    } else if (msg.CommandField == DIMSE_N_EVENT_REPORT_RQ) {
      CommitReport rep;
      bool ours = false;
      cond = receive_event_report(assoc, pcid, msg.msg.NEventReportRQ, s_.transaction_uid, s_.commit_sop_instance,
                                  rep, ours, seconds_left(deadline_));
      if (ours) {
        std::lock_guard lk(mu_);
        state_.report = rep;
      }
      cv_.notify_all();
      event("inbound N-EVENT-REPORT-RQ",
            ours ? "event type " + std::to_string(rep.event_type) + ", " + std::to_string(rep.referenced) +
                       " committed, " + std::to_string(rep.failed) + " failed; answered 0x0000"
                 : std::string("about another transaction; answered 0x0000"));
      if (cond.bad()) {
        ASC_abortAssociation(assoc);
        break;
      }
    } else if (msg.CommandField == DIMSE_C_ECHO_RQ) {
      DIMSE_sendEchoResponse(assoc, pcid, &msg.msg.CEchoRQ, STATUS_Success, nullptr);
      event("inbound C-ECHO-RQ", "answered 0x0000");
    } else {
      event("inbound DIMSE", "unexpected command " + hex4(msg.CommandField) + ": A-ABORT");
      ASC_abortAssociation(assoc);
      break;
    }
  }
  finish();
}

}  // namespace pacs::dicom
