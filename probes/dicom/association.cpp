#include "probes/dicom/association.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmnet/cond.h"
#include "dcmtk/dcmnet/dcmlayer.h"
#include "dcmtk/dcmnet/dcmtrans.h"
#include "dcmtk/dcmtls/tlslayer.h"
#include "dcmtk/ofstd/ofstd.h"

#include <openssl/asn1.h>
#include <openssl/x509.h>

namespace pacs::dicom {

using namespace std::chrono_literals;

namespace {

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

// ---------------------------------------------------------------------------
// Watchdog: one thread for the whole process, a queue of armed associations
// ordered by deadline.

struct DicomAssociation::Guard {
  std::mutex mu;               // guards the fields below against the watchdog
  int fd = -1;                 // our dup of DCMTK's socket; closed by ~Guard
  bool fired = false;          // the watchdog acted (deadline passed)
  bool connected = false;
  Clock::time_point connected_at{};
  // Owned by the watchdog (under its mutex).
  Clock::time_point scheduled{};
  bool queued = false;
  // Transcript steps written at the moment of the connect, on the thread
  // that opens the association (createConnection runs there).
  Transcript* transcript = nullptr;
  Clock::time_point connect_started{};
  std::string peer;     // "127.0.0.1:104"
  std::string rq_text;  // the A-ASSOCIATE-RQ step, sent right after a plain TCP connect

  ~Guard() {
    if (fd >= 0) ::close(fd);
  }
};

namespace {

using Guard = DicomAssociation::Guard;

class Watchdog {
 public:
  static Watchdog& instance() {
    static Watchdog* w = new Watchdog;  // never destroyed: detached users may outlive statics
    return *w;
  }

  void arm(Guard* g, Clock::time_point when) {
    std::lock_guard lk(mu_);
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    g->scheduled = when;
    g->queued = true;
    bool first = queue_.empty() || when < queue_.begin()->first;
    queue_.insert({when, g});
    if (first) cv_.notify_one();
  }

  // Moves the guard's deadline earlier (never later).
  void tighten(Guard* g, Clock::time_point when) {
    std::lock_guard lk(mu_);
    if (!g->queued || when >= g->scheduled) return;
    queue_.erase({g->scheduled, g});
    g->scheduled = when;
    queue_.insert({when, g});
    cv_.notify_one();
  }

  // After this returns the watchdog never touches `g` again.
  void disarm(Guard* g) {
    std::lock_guard lk(mu_);
    if (g->queued) queue_.erase({g->scheduled, g});
    g->queued = false;
  }

  void stop() {
    std::thread t;
    {
      std::lock_guard lk(mu_);
      stop_ = true;
      cv_.notify_one();
      t = std::move(thread_);
    }
    if (t.joinable()) t.join();
    std::lock_guard lk(mu_);
    stop_ = false;
  }

 private:
  void loop() {
    std::unique_lock lk(mu_);
    while (!stop_) {
      if (queue_.empty()) {
        cv_.wait(lk);
        continue;
      }
      auto it = queue_.begin();
      auto now = Clock::now();
      if (it->first > now) {
        // Copy: wait_until reads its time point while the lock is released,
        // and disarm() may erase this node meanwhile (ASan: use-after-free).
        const Clock::time_point when = it->first;
        cv_.wait_until(lk, when);
        continue;
      }
      Guard* g = it->second;
      queue_.erase(it);
      bool done = false;
      {
        std::lock_guard gl(g->mu);
        g->fired = true;
        if (g->fd >= 0) {
          // Ends a pending connect (Linux aborts a SYN_SENT socket on
          // shutdown) and any blocked read/write/handshake at once.
          ::shutdown(g->fd, SHUT_RDWR);
          done = true;
        }
      }
      if (done) {
        g->queued = false;
      } else {
        // No socket yet (still resolving, or between phases): look again
        // shortly, until the socket appears or the association is disarmed.
        g->scheduled = now + 10ms;
        queue_.insert({g->scheduled, g});
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::pair<Clock::time_point, Guard*>> queue_;
  std::thread thread_;
  bool stop_ = false;
};

// The association whose connect() the current thread is about to make.
thread_local Guard* t_connecting = nullptr;

// Sets t_connecting for a scope (reset on every way out).
class ConnectingScope {
 public:
  explicit ConnectingScope(Guard* g) : prev_(t_connecting) { t_connecting = g; }
  ~ConnectingScope() { t_connecting = prev_; }
  ConnectingScope(const ConnectingScope&) = delete;
  ConnectingScope& operator=(const ConnectingScope&) = delete;

 private:
  Guard* prev_;
};

// Only the association's own TCP socket is adopted: the resolver or nscd
// may connect() a UDP or Unix socket on the same thread first.
bool is_tcp_socket(int fd) {
  int type = 0, domain = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) return false;
  len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return false;
  return domain == AF_INET || domain == AF_INET6;
}

// Takes our own reference to the socket: a dup, so the number stays ours
// even after DCMTK closes its descriptor (no shutdown of a reused fd).
void adopt_socket(Guard* g, int s) {
  std::lock_guard lk(g->mu);
  if (g->fd >= 0) return;
  g->fd = ::fcntl(s, F_DUPFD_CLOEXEC, 0);
  if (g->fired && g->fd >= 0) ::shutdown(g->fd, SHUT_RDWR);
}

void note_connected(Guard* g, DcmNativeSocketType s) {
  adopt_socket(g, s);
  Clock::time_point at;
  {
    std::lock_guard lk(g->mu);
    at = g->connected_at = Clock::now();
    g->connected = true;
  }
  if (g->transcript) {
    char buf[48];
    std::snprintf(buf, sizeof buf, " in %.1f ms",
                  std::chrono::duration<double, std::milli>(at - g->connect_started).count());
    g->transcript->add("connect", "TCP " + g->peer + buf);
    if (!g->rq_text.empty()) g->transcript->add("A-ASSOCIATE-RQ", g->rq_text);
  }
}

// Plain TCP: DCMTK's own connection, plus the connect time and the socket.
class TimedTcpLayer : public DcmTransportLayer {
 public:
  explicit TimedTcpLayer(Guard* g) : guard_(g) {}
  DcmTransportConnection* createConnection(DcmNativeSocketType s, OFBool secure) override {
    note_connected(guard_, s);
    return DcmTransportLayer::createConnection(s, secure);
  }

 private:
  Guard* guard_;
};

// DICOM-TLS: one layer (SSL_CTX) per association, never shared between
// threads (docs/dcmtk.md, "DICOM-TLS").
class TimedTlsLayer : public DcmTLSTransportLayer {
 public:
  explicit TimedTlsLayer(Guard* g) : DcmTLSTransportLayer(NET_REQUESTOR, nullptr, OFFalse), guard_(g) {}
  DcmTransportConnection* createConnection(DcmNativeSocketType s, OFBool secure) override {
    note_connected(guard_, s);
    connection_ = DcmTLSTransportLayer::createConnection(s, secure);
    return connection_;
  }
  // "TLSv1.3" after the handshake (owned by DCMTK's association; read only
  // while it is alive).
  std::string protocol() const {
    if (!connection_) return {};
    OFString dump;
    connection_->dumpConnectionParameters(dump);
    std::string d = dump.c_str();
    auto p = d.find("Protocol");
    if (p == std::string::npos) return {};
    p = d.find(':', p);
    if (p == std::string::npos) return {};
    auto e = d.find('\n', p);
    std::string v = d.substr(p + 1, e == std::string::npos ? std::string::npos : e - p - 1);
    while (!v.empty() && v.front() == ' ') v.erase(0, 1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\r')) v.pop_back();
    return v;
  }

 private:
  Guard* guard_;
  DcmTransportConnection* connection_ = nullptr;
};

const std::string& local_host_name() {
  static const std::string name = OFStandard::getHostName().c_str();
  return name;
}

}  // namespace

bool connect_hook_active() { return connect_hook_adopts(AF_INET, SOCK_STREAM); }

bool connect_hook_adopts(int domain, int type) {
  Guard probe;
  {
    ConnectingScope scope(&probe);
    int s = ::socket(domain, type | SOCK_CLOEXEC, 0);
    if (s >= 0) {
      if (domain == AF_UNIX) {
        sockaddr_un u{};
        u.sun_family = AF_UNIX;
        std::snprintf(u.sun_path + 1, sizeof u.sun_path - 1, "pacs-agent-hook-check");  // abstract, unbound: refused
        (void)::connect(s, reinterpret_cast<sockaddr*>(&u), sizeof u);
      } else {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = 0;  // refused at once, or EADDRNOTAVAIL: only the hook matters
        (void)::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
      }
      ::close(s);
    }
  }
  bool adopted = probe.fd >= 0;
  if (adopted) ::close(probe.fd);
  probe.fd = -1;
  return adopted;
}

void stop_watchdog() { Watchdog::instance().stop(); }

SocketDeadline::SocketDeadline(int fd, Clock::time_point deadline) : guard_(std::make_unique<Guard>()) {
  adopt_socket(guard_.get(), fd);
  Watchdog::instance().arm(guard_.get(), deadline);
}

SocketDeadline::~SocketDeadline() { Watchdog::instance().disarm(guard_.get()); }

void SocketDeadline::shutdown_now() {
  std::lock_guard lk(guard_->mu);
  if (guard_->fd >= 0) ::shutdown(guard_->fd, SHUT_RDWR);
}

bool SocketDeadline::fired() const {
  std::lock_guard lk(guard_->mu);
  return guard_->fired;
}

std::string uid_name(const std::string& uid) {
  const char* n = dcmFindNameOfUID(uid.c_str(), nullptr);
  if (!n) return uid;
  std::string s = n;
  for (const char* suffix : {"SOPClass", "TransferSyntax"}) {
    std::string x = suffix;
    if (s.size() > x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0) s.erase(s.size() - x.size());
  }
  return s;
}

// ---------------------------------------------------------------------------
// DNS with a deadline.

namespace {

struct Lookup {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Resolved result;
};

class Resolver {
 public:
  static Resolver& instance() {
    static Resolver* r = new Resolver;  // never destroyed: lookup threads may outlive main
    return *r;
  }

  std::shared_ptr<Lookup> start(const std::string& host) {
    std::lock_guard lk(mu_);
    auto it = inflight_.find(host);
    if (it != inflight_.end()) return it->second;  // join the running lookup
    auto l = std::make_shared<Lookup>();
    inflight_[host] = l;
    std::thread([this, host, l] {
      Resolved r;
      addrinfo hints{};
      hints.ai_family = AF_INET;  // DCMTK 3.6.7 connects over IPv4 only
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
      if (rc == 0 && res) {
        char buf[INET_ADDRSTRLEN] = {};
        auto* sin = reinterpret_cast<sockaddr_in*>(res->ai_addr);
        ::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
        r.address = buf;
      } else {
        r.error = rc == EAI_SYSTEM ? std::string("system error") : std::string(::gai_strerror(rc));
      }
      if (res) ::freeaddrinfo(res);
      {
        std::lock_guard lk2(mu_);
        inflight_.erase(host);
      }
      std::lock_guard lk3(l->mu);
      l->result = std::move(r);
      l->done = true;
      l->cv.notify_all();
    }).detach();
    return l;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Lookup>> inflight_;
};

}  // namespace

Resolved resolve_ipv4(const std::string& host, Clock::time_point deadline) {
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) == 1) return {host, false, {}};
  auto l = Resolver::instance().start(host);
  std::unique_lock lk(l->mu);
  if (!l->cv.wait_until(lk, deadline, [&] { return l->done; })) return {{}, true, {}};
  return l->result;
}

// ---------------------------------------------------------------------------

DicomAssociation::DicomAssociation(AssociationSettings settings, Clock::time_point deadline)
    : settings_(std::move(settings)), deadline_(deadline), guard_(std::make_unique<Guard>()) {
  Watchdog::instance().arm(guard_.get(), deadline_);
}

DicomAssociation::~DicomAssociation() {
  if (associated_) abort();
  if (assoc_) {
    ASC_destroyAssociation(&assoc_);  // also frees params_
    params_ = nullptr;
  }
  if (params_) ASC_destroyAssociationParameters(&params_);
  if (net_) ASC_dropNetwork(&net_);
  layer_.reset();
  Watchdog::instance().disarm(guard_.get());
}

int DicomAssociation::poll_fd() const {
  std::lock_guard lk(guard_->mu);
  return guard_->fd;
}

void DicomAssociation::note(std::string step, std::string detail) const {
  if (settings_.transcript) settings_.transcript->add(std::move(step), std::move(detail));
}

// "accepted: Verification (LittleEndianImplicit); not accepted: 1 of 2; their max PDU 16384"
void DicomAssociation::note_accepted() const {
  if (!settings_.transcript || !assoc_) return;
  std::string acc, refused;
  int n = ASC_countPresentationContexts(assoc_->params), shown = 0, not_accepted = 0;
  for (int i = 0; i < n; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc_->params, i, &pc).bad()) continue;
    if (pc.resultReason != ASC_P_ACCEPTANCE) {
      ++not_accepted;
      continue;
    }
    if (shown++ < 6) {
      acc += (acc.empty() ? "" : ", ") + uid_name(pc.abstractSyntax) + " (" + uid_name(pc.acceptedTransferSyntax) +
             (pc.acceptedRole == ASC_SC_ROLE_SCP ? ", we are SCP" : "") + ")";
    }
  }
  if (shown > 6) acc += ", +" + std::to_string(shown - 6) + " more";
  std::string d = "accepted: " + (acc.empty() ? std::string("none") : acc);
  if (not_accepted) d += "; not accepted: " + std::to_string(not_accepted) + " of " + std::to_string(n);
  d += "; their max PDU " + std::to_string(assoc_->params->theirMaxPDUReceiveSize);
  note("A-ASSOCIATE-AC", d);
}

bool DicomAssociation::deadline_hit() const {
  std::lock_guard lk(guard_->mu);
  return guard_->fired || Clock::now() >= deadline_;
}

int DicomAssociation::timeout_seconds() const {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
  // Rounded up: the watchdog, not DCMTK, enforces the exact deadline.
  return static_cast<int>(std::max<long long>(1, (ms + 999) / 1000));
}

Failure DicomAssociation::failure(const OFCondition& cond, const std::string& what) const {
  bool hit = deadline_hit();
  Reason r = classify_condition(cond.module(), cond.code(), cond.text() ? cond.text() : "", phase_, hit);
  std::string peer = settings_.called_ae_title + "@" + settings_.host + ":" + std::to_string(settings_.port);
  std::string msg;
  switch (r) {
    case Reason::connect_timeout: msg = "TCP connect to " + peer + " did not complete before the deadline"; break;
    case Reason::association_timeout:
      msg = phase_ == Phase::release ? "no A-RELEASE response from " + peer + " before the deadline"
            : guard_->connected && phase_ == Phase::associate && settings_.tls && !associated_
                ? "no TLS handshake / A-ASSOCIATE response from " + peer + " before the deadline"
                : "no A-ASSOCIATE response from " + peer + " before the deadline";
      break;
    case Reason::dimse_timeout: msg = "no " + what + " response from " + peer + " before the deadline"; break;
    default: msg = what + " with " + peer + " failed: " + (cond.text() ? cond.text() : "unknown error");
  }
  return {r, msg};
}

std::optional<Failure> DicomAssociation::open() {
  phase_ = Phase::resolve;
  if (Clock::now() >= deadline_) return Failure{Reason::connect_timeout, "deadline passed before connecting"};
  auto r0 = Clock::now();
  auto res = resolve_ipv4(settings_.host, deadline_);
  if (res.timed_out) {
    note("resolve", settings_.host + ": no answer before the deadline");
    return Failure{Reason::dns_failure, "DNS lookup of \"" + settings_.host + "\" did not finish before the deadline"};
  }
  if (res.address.empty()) {
    note("resolve", settings_.host + ": " + res.error);
    return Failure{Reason::dns_failure, "DNS lookup of \"" + settings_.host + "\" failed: " + res.error};
  }
  if (settings_.transcript) {
    note("resolve", res.address == settings_.host
                        ? settings_.host + " (IP address, no lookup)"
                        : settings_.host + " -> " + res.address + " in " + std::to_string(static_cast<int>(
                              std::chrono::duration<double, std::milli>(Clock::now() - r0).count())) + " ms");
  }

  phase_ = Phase::connect;
  OFCondition cond = ASC_initializeNetwork(NET_REQUESTOR, 0, timeout_seconds(), &net_);
  if (cond.bad()) return Failure{Reason::internal, std::string("ASC_initializeNetwork: ") + cond.text()};
  if (settings_.tls) {
    auto tl = std::make_unique<TimedTlsLayer>(guard_.get());
    const auto& t = *settings_.tls;
    auto check = [&](OFCondition c, const std::string& what) -> std::optional<Failure> {
      if (c.good()) return std::nullopt;
      return Failure{Reason::tls_failure, what + ": " + c.text()};
    };
    if (auto f = check(tl->addTrustedCertificateFile(t.ca_file.c_str(), DCF_Filetype_PEM),
                       "cannot load CA file " + t.ca_file)) {
      return f;
    }
    if (!t.cert_file.empty()) {
      if (auto f = check(tl->setPrivateKeyFile(t.key_file.c_str(), DCF_Filetype_PEM),
                         "cannot load key file " + t.key_file)) {
        return f;
      }
      if (auto f = check(tl->setCertificateFile(t.cert_file.c_str(), DCF_Filetype_PEM),
                         "cannot load certificate file " + t.cert_file)) {
        return f;
      }
      if (!tl->checkPrivateKeyMatchesCertificate()) {
        return Failure{Reason::tls_failure, "key_file does not match cert_file"};
      }
    }
    if (auto f = check(tl->setTLSProfile(TSP_Profile_BCP195_ND), "TLS profile")) return f;
    if (auto f = check(tl->activateCipherSuites(), "TLS cipher suites")) return f;
    tl->setCertificateVerification(t.verify_peer ? DCV_requireCertificate : DCV_ignoreCertificate);
    layer_ = std::move(tl);
  } else {
    layer_ = std::make_unique<TimedTcpLayer>(guard_.get());
  }
  cond = ASC_setTransportLayer(net_, layer_.get(), 0);
  if (cond.good()) cond = ASC_createAssociationParameters(&params_, ASC_DEFAULTMAXPDU);
  if (cond.good()) {
    cond = ASC_setAPTitles(params_, settings_.calling_ae_title.c_str(), settings_.called_ae_title.c_str(), nullptr);
  }
  if (cond.good()) cond = ASC_setTransportLayerType(params_, settings_.tls ? OFTrue : OFFalse);
  std::string peer = res.address + ":" + std::to_string(settings_.port);
  if (cond.good()) cond = ASC_setPresentationAddresses(params_, local_host_name().c_str(), peer.c_str());
  std::string rq_text;
  T_ASC_PresentationContextID pcid = 1;
  for (const auto& pc : settings_.contexts) {
    if (cond.bad()) break;
    std::vector<const char*> ts;
    for (const auto& s : pc.transfer_syntaxes) ts.push_back(s.c_str());
    cond = ASC_addPresentationContext(params_, pcid, pc.abstract_syntax.c_str(), ts.data(), static_cast<int>(ts.size()),
                                      pc.role);
    pcid = static_cast<T_ASC_PresentationContextID>(pcid + 2);
  }
  if (cond.bad()) return Failure{Reason::internal, std::string("association parameters: ") + cond.text()};
  if (settings_.transcript) {
    std::string d = settings_.calling_ae_title + " -> " + settings_.called_ae_title + " at " + peer + ", " +
                    std::to_string(settings_.contexts.size()) + " presentation context(s): ";
    for (size_t i = 0; i < settings_.contexts.size() && i < 4; ++i) {
      const auto& pc = settings_.contexts[i];
      d += (i ? ", " : "") + uid_name(pc.abstract_syntax) + (pc.role == ASC_SC_ROLE_SCP ? " (as SCP)" : "") + " [";
      for (size_t t = 0; t < pc.transfer_syntaxes.size(); ++t) d += (t ? " " : "") + uid_name(pc.transfer_syntaxes[t]);
      d += "]";
    }
    if (settings_.contexts.size() > 4) d += ", +" + std::to_string(settings_.contexts.size() - 4) + " more";
    d += "; our max PDU " + std::to_string(ASC_DEFAULTMAXPDU);
    rq_text = d;
  }
  // Plain TCP: connect and A-ASSOCIATE-RQ are noted when the connect
  // completes (TimedTcpLayer); with TLS the request follows the handshake
  // and is noted with its outcome.
  guard_->transcript = settings_.transcript;
  guard_->peer = peer;
  if (!settings_.tls) guard_->rq_text = rq_text;

  // DCMTK 3.6.7 waits for the connect in poll(), restarted on EINTR with
  // the full process-global timeout: the only handle on it is the socket,
  // which our connect() hook hands to the watchdog.
  auto t0 = Clock::now();
  guard_->connect_started = t0;
  {
    ConnectingScope scope(guard_.get());
    cond = ASC_requestAssociation(net_, params_, &assoc_);
  }
  auto t1 = Clock::now();
  bool connected;
  Clock::time_point connected_at;
  {
    std::lock_guard lk(guard_->mu);
    connected = guard_->connected;
    connected_at = guard_->connected_at;
  }
  if (connected) {
    times_.connect = seconds_between(t0, connected_at);
    times_.associate = seconds_between(connected_at, t1);
    phase_ = Phase::associate;
  }
  guard_->transcript = nullptr;
  if (cond.bad()) {
    std::optional<Failure> f;
    if (cond == DUL_ASSOCIATIONREJECTED) {
      if (settings_.tls) note("A-ASSOCIATE-RQ", rq_text);
      T_ASC_RejectParameters rej{};
      ASC_getRejectParameters(params_, &rej);
      reject_ = RejectInfo{static_cast<int>(rej.result), static_cast<int>(rej.source), static_cast<int>(rej.reason)};
      f = Failure{Reason::association_rejected, reject_message(reject_->result, reject_->source, reject_->dcmtk_reason)};
      note("A-ASSOCIATE-RJ", f->message.substr(std::string("association rejected: ").size()));
    } else {
      f = failure(cond, "A-ASSOCIATE");
      if (settings_.tls && connected) {
        if (f->reason == Reason::tls_failure) note("TLS", std::string("handshake failed: ") + (cond.text() ? cond.text() : ""));
        else note("A-ASSOCIATE-RQ", rq_text);  // (if the handshake got that far)
      }
      note("A-ASSOCIATE", std::string(to_string(f->reason)) + ": " + f->message);
    }
    if (assoc_) params_ = nullptr;  // owned by the association now
    return f;
  }
  params_ = nullptr;
  associated_ = true;
  if (settings_.tls) {
    read_peer_certificate();
    if (settings_.transcript) {
      std::string d = static_cast<TimedTlsLayer*>(layer_.get())->protocol();
      if (d.empty()) d = "handshake done";
      if (cert_not_after_) {
        std::time_t t = static_cast<std::time_t>(*cert_not_after_);
        std::tm tm{};
        gmtime_r(&t, &tm);
        char buf[64];
        std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        d += ", peer certificate expires " + std::string(buf);
      }
      note("TLS", d);
      note("A-ASSOCIATE-RQ", rq_text);
    }
  }
  note_accepted();
  if (ASC_countAcceptedPresentationContexts(assoc_->params) == 0) {
    abort();
    return Failure{Reason::association_rejected,
                   "association accepted but every presentation context was rejected (SOP class not supported)"};
  }
  return std::nullopt;
}

T_ASC_PresentationContextID DicomAssociation::accepted_context(const std::string& abstract_syntax) const {
  if (!assoc_) return 0;
  return ASC_findAcceptedPresentationContextID(assoc_, abstract_syntax.c_str());
}

void DicomAssociation::begin_dimse() {
  phase_ = Phase::dimse;
  phase_start_ = Clock::now();
}

void DicomAssociation::end_dimse() { times_.dimse = seconds_between(phase_start_, Clock::now()); }

std::optional<Failure> DicomAssociation::release() {
  phase_ = Phase::release;
  auto t0 = Clock::now();
  note("A-RELEASE-RQ", "");
  OFCondition cond = ASC_releaseAssociation(assoc_);
  times_.release = seconds_between(t0, Clock::now());
  if (cond.good()) {
    associated_ = false;
    if (settings_.transcript) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "in %.1f ms", *times_.release * 1000);
      note("A-RELEASE-RP", buf);
    }
    return std::nullopt;
  }
  auto f = failure(cond, "A-RELEASE");
  note("A-RELEASE", std::string(to_string(f.reason)) + ": " + f.message);
  abort();
  return f;
}

void DicomAssociation::abort() {
  if (!associated_) return;
  associated_ = false;
  // A-ABORT, then DCMTK waits for the peer to close: allow it a moment only.
  Watchdog::instance().tighten(guard_.get(), std::min(deadline_, Clock::now() + 250ms));
  note("A-ABORT", "sent");
  ASC_abortAssociation(assoc_);
}

void DicomAssociation::read_peer_certificate() {
  unsigned long len = ASC_getPeerCertificateLength(assoc_);
  if (len == 0) return;
  std::vector<unsigned char> der(len);
  if (ASC_getPeerCertificate(assoc_, der.data(), len) != len) return;
  const unsigned char* p = der.data();
  X509* cert = d2i_X509(nullptr, &p, static_cast<long>(len));
  if (!cert) return;
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) cert_not_after_ = static_cast<double>(timegm(&tm));
  X509_free(cert);
}

}  // namespace pacs::dicom

// DCMTK 3.6.7 creates and connects its socket internally and gives no way to
// bound or interrupt the connect per association. This definition interposes
// libc's connect() for the process (executables' symbols come first in the
// dynamic lookup): on a thread that is opening a DicomAssociation it first
// hands a dup of the socket to that association's watchdog guard; every
// other caller (curl, Beast, anything) goes straight to the real connect().
// Only TCP sockets are adopted; without a next connect() (a static link)
// the raw system call is made.
extern "C" int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  using ConnectFn = int (*)(int, const struct sockaddr*, socklen_t);
  static const ConnectFn real = reinterpret_cast<ConnectFn>(::dlsym(RTLD_NEXT, "connect"));
  if (auto* g = pacs::dicom::t_connecting; g && pacs::dicom::is_tcp_socket(fd)) pacs::dicom::adopt_socket(g, fd);
  if (!real) return static_cast<int>(::syscall(SYS_connect, fd, addr, len));
  return real(fd, addr, len);
}
