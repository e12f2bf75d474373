#include "agent/http_server.h"

#include <zlib.h>

#include <list>
#include <mutex>
#include <optional>
#include <stdexcept>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "agent/config.h"
#include "agent/http_auth.h"

namespace pacs {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace ssl = net::ssl;

namespace {
std::shared_ptr<ssl::context> make_tls_context(const HttpSecurity& sec) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  beast::error_code ec;
  ctx->use_certificate_chain_file(sec.tls_cert_file, ec);
  if (ec) throw std::runtime_error("tls_cert_file " + sec.tls_cert_file + ": " + ec.message());
  ctx->use_private_key_file(sec.tls_key_file, ssl::context::pem, ec);
  if (ec) throw std::runtime_error("tls_key_file " + sec.tls_key_file + ": " + ec.message());
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    throw std::runtime_error("tls_key_file " + sec.tls_key_file + " does not match tls_cert_file " + sec.tls_cert_file);
  }
  if (!sec.tls_client_ca_file.empty()) {
    ctx->load_verify_file(sec.tls_client_ca_file, ec);
    if (ec) throw std::runtime_error("tls_client_ca_file " + sec.tls_client_ca_file + ": " + ec.message());
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}
}  // namespace

void check_tls_files(const std::string& cert, const std::string& key, const std::string& client_ca) {
  HttpSecurity s;
  s.tls_cert_file = cert;
  s.tls_key_file = key;
  s.tls_client_ca_file = client_ca;
  make_tls_context(s);
}

bool is_bcrypt_hash(const std::string& h) {
  return h.size() == 60 && (h.rfind("$2a$", 0) == 0 || h.rfind("$2b$", 0) == 0 || h.rfind("$2y$", 0) == 0);
}

// A connection as the server's bookkeeping sees it (the Session template
// derives from it).
struct SessionBase {
  virtual ~SessionBase() = default;
  virtual void evict() = 0;  // from any thread: closes the connection on its executor
  std::string ip;
  // Waiting for a request's first byte (new or keep-alive), since when.
  bool idle = true;
  Clock::time_point idle_since = Clock::now();
  bool evicting = false;
  std::weak_ptr<SessionBase> weak_self;
};

struct HttpServer::Shared {
  Shared(Logger& l, HttpHandler h, HttpLimits lim, const HttpSecurity& sec, std::shared_ptr<prometheus::Registry> reg)
      : log(l),
        handler(std::move(h)),
        limits(lim),
        registry(reg ? std::move(reg) : std::make_shared<prometheus::Registry>()),
        rejected(prometheus::BuildCounter()
                     .Name("pacs_agent_http_connections_rejected_total")
                     .Help("HTTP connections refused or dropped to protect the server, by reason: max_connections, "
                           "max_connections_per_client (no idle connection to make room), request_timeout (TLS "
                           "handshake or request not complete in time).")
                     .Register(*registry)),
        evicted(prometheus::BuildCounter()
                    .Name("pacs_agent_http_connections_evicted_total")
                    .Help("Idle keep-alive HTTP connections closed to make room for a new one.")
                    .Register(*registry)
                    .Add({})),
        accept_errors(prometheus::BuildCounter()
                          .Name("pacs_agent_http_accept_errors_total")
                          .Help("Failed accept() calls (e.g. out of file descriptors); the listener backs off.")
                          .Register(*registry)
                          .Add({})),
        open(prometheus::BuildGauge()
                 .Name("pacs_agent_http_connections")
                 .Help("Open HTTP connections.")
                 .Register(*registry)
                 .Add({})) {
    for (const char* r : {"max_connections", "max_connections_per_client", "request_timeout"}) rejected.Add({{"reason", r}});
    set_security(sec);
  }
  Logger& log;
  HttpHandler handler;
  HttpLimits limits;
  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>& rejected;
  prometheus::Counter& evicted;
  prometheus::Counter& accept_errors;
  prometheus::Gauge& open;

  // TLS context and auth for new connections/requests; swapped by reloads.
  mutable std::mutex security_mu;
  std::shared_ptr<ssl::context> tls;
  std::shared_ptr<BasicAuth> auth;
  void set_security(const HttpSecurity& sec) {
    std::shared_ptr<ssl::context> t;
    if (!sec.tls_cert_file.empty()) t = make_tls_context(sec);  // throws before anything changes
    auto a = std::make_shared<BasicAuth>(sec.basic_auth_users);
    std::lock_guard lock(security_mu);
    tls = std::move(t);
    auth = std::move(a);
  }
  std::shared_ptr<ssl::context> current_tls() const {
    std::lock_guard lock(security_mu);
    return tls;
  }
  std::shared_ptr<BasicAuth> current_auth() const {
    std::lock_guard lock(security_mu);
    return auth;
  }

  // Every open connection, for the caps and eviction.
  mutable std::mutex conn_mu;
  std::list<SessionBase*> conns;
  std::map<std::string, int> per_client;

  // Admits a connection from `ip`, closing the longest-idle one when a cap
  // is reached; false (counted) when nothing can be closed.
  bool admit(const std::string& ip) {
    std::lock_guard lock(conn_mu);
    int total = static_cast<int>(conns.size());
    int mine = per_client.count(ip) ? per_client[ip] : 0;
    // Connections already being evicted no longer count.
    for (auto* c : conns) {
      if (!c->evicting) continue;
      --total;
      if (c->ip == ip) --mine;
    }
    if (mine >= limits.max_connections_per_client) {
      if (!evict_one_locked(&ip)) {
        rejected.Add({{"reason", "max_connections_per_client"}}).Increment();
        return false;
      }
    } else if (total >= limits.max_connections) {
      if (!evict_one_locked(nullptr)) {
        rejected.Add({{"reason", "max_connections"}}).Increment();
        return false;
      }
    }
    return true;
  }
  bool evict_one_locked(const std::string* ip) {
    SessionBase* victim = nullptr;
    for (auto* c : conns) {
      if (!c->idle || c->evicting || (ip && c->ip != *ip)) continue;
      if (!victim || c->idle_since < victim->idle_since) victim = c;
    }
    if (!victim) return false;
    auto keep = victim->weak_self.lock();
    if (!keep) return false;
    victim->evicting = true;
    evicted.Increment();
    keep->evict();
    return true;
  }
  void add(SessionBase* s) {
    std::lock_guard lock(conn_mu);
    conns.push_back(s);
    ++per_client[s->ip];
    open.Increment();
  }
  void remove(SessionBase* s) {
    std::lock_guard lock(conn_mu);
    conns.remove(s);
    if (--per_client[s->ip] <= 0) per_client.erase(s->ip);
    open.Decrement();
  }
  void set_idle(SessionBase* s, bool idle) {
    std::lock_guard lock(conn_mu);
    s->idle = idle;
    if (idle) s->idle_since = Clock::now();
  }
  int count() const {
    std::lock_guard lock(conn_mu);
    return static_cast<int>(conns.size());
  }
};

std::string gzip_compress(const std::string& in) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(in.size())));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate failed");
  return out;
}

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

namespace {

bool accepts_gzip(const std::string& accept_encoding) {
  // Good enough for scrapers: "gzip" listed and not explicitly q=0.
  auto pos = accept_encoding.find("gzip");
  if (pos == std::string::npos) return false;
  auto rest = accept_encoding.substr(pos);
  auto comma = rest.find(',');
  auto part = rest.substr(0, comma);
  return part.find("q=0") == std::string::npos || part.find("q=0.") != std::string::npos;
}

// The request as handlers see it.
HttpRequest to_request(const http::request<http::string_body>& req) {
  HttpRequest r;
  r.method = std::string(req.method_string());
  std::string_view target(req.target().data(), req.target().size());
  auto q = target.find('?');
  r.path = url_decode(target.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view qs = target.substr(q + 1);
    while (!qs.empty()) {
      auto amp = qs.find('&');
      auto kv = qs.substr(0, amp);
      auto eq = kv.find('=');
      if (!kv.empty()) {
        r.query[url_decode(kv.substr(0, eq))] = eq == std::string_view::npos ? "" : url_decode(kv.substr(eq + 1));
      }
      if (amp == std::string_view::npos) break;
      qs = qs.substr(amp + 1);
    }
  }
  for (const auto& f : req) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = std::string(f.value());
  }
  return r;
}

// Stream is beast::tcp_stream (plain HTTP) or beast::ssl_stream<beast::tcp_stream>.
//
// A connection's life: [TLS handshake] -> wait for a request's first byte
// (idle_timeout; evictable) -> read the request (request_timeout) -> auth
// (maybe on the bcrypt pool) -> handler (handler_timeout, a timer of our
// own: Beast's stream timeout only runs while a read or write is pending)
// -> write (request_timeout) -> next request or close.
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  template <class... ExtraArgs>
  Session(tcp::socket&& socket, std::shared_ptr<HttpServer::Shared> shared, std::string client_ip,
          ExtraArgs&&... extra)
      : stream_(std::move(socket), std::forward<ExtraArgs>(extra)...),
        timer_(stream_.get_executor()),
        shared_(std::move(shared)) {
    ip = std::move(client_ip);
    beast::error_code ec;
    auto ep = lowest().socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  ~Session() override { shared_->remove(this); }

  // After make_shared: registers the connection and starts it.
  void start(std::shared_ptr<ssl::context> tls_keepalive) {
    tls_ = std::move(tls_keepalive);
    weak_self = this->weak_from_this();
    shared_->add(this);
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->busy();
        self->lowest().expires_after(self->shared_->limits.request_timeout);
        self->stream_.async_handshake(ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) {
            if (ec == beast::error::timeout) self->count_timeout();
            self->shared_->log.debug("TLS handshake failed", {{"remote", self->remote_}, {"err", ec.message()}});
            return;
          }
          self->wait_request();
        });
      } else {
        self->wait_request();
      }
    });
  }

  void evict() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] { self->close_now(); });
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void busy() { shared_->set_idle(this, false); }
  void count_timeout() { shared_->rejected.Add({{"reason", "request_timeout"}}).Increment(); }

  void close_now() {
    closed_ = true;
    timer_.cancel();
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close();
  }

  // Idle until the next request's first byte (already buffered: go on). The
  // first bytes are read through the stream itself: with TLS, the handshake
  // may already have pulled the request's record off the socket.
  void wait_request() {
    if (closed_) return;
    if (buffer_.size() > 0) return do_read();
    shared_->set_idle(this, true);
    lowest().expires_after(shared_->limits.idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
      if (ec || self->closed_) return;  // closed by the client, idle too long, or evicted
      self->buffer_.commit(n);
      self->do_read();
    });
  }

  void do_read() {
    busy();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->limits.header_bytes));
    parser_->body_limit(shared_->limits.body_bytes);
    lowest().expires_after(shared_->limits.request_timeout);
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return do_close();
    if (ec == http::error::header_limit) return reply_error(http::status::request_header_fields_too_large, "request header too large\n");
    if (ec == http::error::body_limit) return reply_error(http::status::payload_too_large, "request body too large\n");
    if (ec == beast::error::timeout) return count_timeout();  // slow client (slowloris): drop it
    if (ec) {
      if (ec.category() == beast::error_code(http::error::bad_target).category() && ec != http::error::partial_message) {
        return reply_error(http::status::bad_request, "bad request\n");
      }
      return;
    }
    auto& req = parser_->get();
    HttpRequest r = to_request(req);
    r.remote = remote_;
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    gzip_ok_ = accepts_gzip(r.header("accept-encoding"));
    head_ = req.method() == http::verb::head;

    auto auth = shared_->current_auth();
    if (auto v = auth->quick(r.header("authorization"))) return authorized(std::move(r), *v);
    // bcrypt: on the auth pool, under the handler deadline.
    arm_handler_deadline();
    std::string header = r.header("authorization");
    auth->verify(header, [self = this->shared_from_this(), r = std::move(r)](BasicAuth::Verdict v) mutable {
      net::post(self->stream_.get_executor(),
                [self, r = std::move(r), v]() mutable { self->authorized(std::move(r), v); });
    });
  }

  void authorized(HttpRequest r, BasicAuth::Verdict v) {
    if (closed_ || handler_timed_out_) return;
    if (v == BasicAuth::Verdict::deny) {
      HttpReply deny = HttpReply::text(401, "Unauthorized\n");
      deny.headers.push_back({"WWW-Authenticate", "Basic realm=\"pacs-agent\", charset=\"UTF-8\""});
      timer_.cancel();
      return write(std::move(deny));
    }
    if (v == BasicAuth::Verdict::busy) {
      keep_alive_ = false;
      HttpReply busy_reply = HttpReply::text(503, "too many authentication attempts in progress\n");
      busy_reply.headers.push_back({"Retry-After", "1"});
      timer_.cancel();
      return write(std::move(busy_reply));
    }
    arm_handler_deadline();
    auto self = this->shared_from_this();
    auto done = std::make_shared<std::atomic<bool>>(false);
    pending_ = done;
    Respond respond = [self, done](HttpReply reply) {
      if (done->exchange(true)) return;  // exactly once (or the deadline answered already)
      net::post(self->stream_.get_executor(), [self, reply = std::move(reply)]() mutable {
        self->timer_.cancel();
        self->write(std::move(reply));
      });
    };
    try {
      shared_->handler(r, respond);
    } catch (const std::exception& e) {
      shared_->log.error("http handler threw", {{"path", r.path}, {"err", e.what()}});
      respond(HttpReply::text(500, "internal error\n"));
    }
  }

  // A handler (or bcrypt) that has not answered by handler_timeout: answer
  // 503 in its place and close the connection after writing it.
  void arm_handler_deadline() {
    handler_timed_out_ = false;
    timer_.expires_after(shared_->limits.handler_timeout);
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      if (self->pending_ && self->pending_->exchange(true)) return;  // the reply is on its way
      self->handler_timed_out_ = true;
      self->shared_->log.warn("HTTP handler did not reply in time; answering 503", {{"remote", self->remote_}});
      self->keep_alive_ = false;
      self->write(HttpReply::text(503, "handler timed out\n"));
    });
  }

  void reply_error(http::status status, const char* body) {
    keep_alive_ = false;
    version_ = 11;
    head_ = false;
    gzip_ok_ = false;
    write(HttpReply::text(static_cast<int>(status), body));
  }

  void write(HttpReply reply) {
    if (closed_) return;
    pending_.reset();
    res_ = {};
    res_.version(version_);
    res_.result(static_cast<unsigned>(reply.status));
    res_.set(http::field::server, "pacs-agent");
    res_.set(http::field::content_type, reply.content_type);
    for (const auto& [k, v] : reply.headers) res_.set(k, v);
    if (reply.compressible && gzip_ok_ && reply.body.size() > 256) {
      res_.body() = gzip_compress(reply.body);
      res_.set(http::field::content_encoding, "gzip");
    } else {
      res_.body() = std::move(reply.body);
    }
    if (reply.compressible) res_.set(http::field::vary, "Accept-Encoding");
    res_.keep_alive(keep_alive_);
    res_.prepare_payload();
    if (head_) res_.body().clear();  // Content-Length stays that of the GET body
    lowest().expires_after(shared_->limits.request_timeout);
    http::async_write(stream_, res_, beast::bind_front_handler(&Session::on_write, this->shared_from_this(), !keep_alive_));
  }

  void on_write(bool close, beast::error_code ec, std::size_t) {
    if (ec) return;
    if (close) return do_close();
    wait_request();
  }

  void do_close() {
    closed_ = true;
    timer_.cancel();
    if constexpr (kTls) {
      lowest().expires_after(std::chrono::seconds(5));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  Stream stream_;
  net::steady_timer timer_;  // the handler deadline
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::shared_ptr<HttpServer::Shared> shared_;
  std::shared_ptr<ssl::context> tls_;  // the context this connection was made with
  std::shared_ptr<std::atomic<bool>> pending_;  // the current Respond's "answered" flag
  std::string remote_;
  bool keep_alive_ = true, gzip_ok_ = false, head_ = false, closed_ = false, handler_timed_out_ = false;
  unsigned version_ = 11;
};

}  // namespace

struct HttpServer::Listener : std::enable_shared_from_this<HttpServer::Listener> {
  Listener(net::io_context& ioc, std::shared_ptr<Shared> shared)
      : ioc(ioc), acceptor(ioc), backoff_timer(ioc), shared(std::move(shared)) {}
  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !self->acceptor.is_open()) return;
      if (ec) return self->back_off(ec);
      self->backoff = std::chrono::milliseconds(0);
      beast::error_code ep_ec;
      auto ep = socket.remote_endpoint(ep_ec);
      std::string ip = ep_ec ? std::string() : ep.address().to_string();
      if (!self->shared->admit(ip)) {
        beast::error_code ignored;
        socket.close(ignored);  // over a cap with nothing idle to close: refuse cheaply
      } else if (auto tls = self->shared->current_tls()) {
        auto s = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket), self->shared, ip, *tls);
        s->start(tls);
      } else {
        std::make_shared<Session<beast::tcp_stream>>(std::move(socket), self->shared, ip)->start(nullptr);
      }
      self->accept();
    });
  }
  // accept() failed (EMFILE, ENFILE, ENOBUFS...): the pending connection
  // stays in the backlog and the socket stays readable, so accepting again
  // at once would spin the io thread. Wait, doubling up to 1 s.
  void back_off(const beast::error_code& ec) {
    shared->accept_errors.Increment();
    backoff = std::min<std::chrono::milliseconds>(std::max<std::chrono::milliseconds>(backoff * 2, std::chrono::milliseconds(10)),
                                                  std::chrono::seconds(1));
    auto now = Clock::now();
    if (now - last_log >= std::chrono::seconds(60)) {
      last_log = now;
      shared->log.warn("cannot accept HTTP connections; backing off",
                       {{"err", ec.message()}, {"retry_ms", std::to_string(backoff.count())}});
    }
    backoff_timer.expires_after(backoff);
    backoff_timer.async_wait([self = shared_from_this()](beast::error_code tec) {
      if (tec || !self->acceptor.is_open()) return;
      self->accept();
    });
  }
  net::io_context& ioc;
  tcp::acceptor acceptor;
  net::steady_timer backoff_timer;
  std::chrono::milliseconds backoff{0};
  Clock::time_point last_log{};
  std::shared_ptr<Shared> shared;
};

HttpServer::HttpServer(net::io_context& ioc, Logger& log, HttpHandler handler, HttpLimits limits,
                       HttpSecurity security, std::shared_ptr<prometheus::Registry> metrics)
    : ioc_(ioc), shared_(std::make_shared<Shared>(log, std::move(handler), limits, security, std::move(metrics))) {}

// The bcrypt pool's callbacks hold connections: stop it while the server and
// its io_context still exist, so none runs (or frees a connection) later.
HttpServer::~HttpServer() {
  stop();
  if (auto a = shared_->current_auth()) a->stop();
}

void HttpServer::set_security(const HttpSecurity& security) { shared_->set_security(security); }

int HttpServer::connections() const { return shared_->count(); }

void HttpServer::listen(const std::string& host_port) {
  std::string host;
  int port;
  if (!split_host_port(host_port, host, port)) throw std::runtime_error("invalid listen address \"" + host_port + "\"");
  beast::error_code ec;
  net::ip::address addr;
  if (host.empty()) {
    addr = net::ip::address_v4::any();
  } else if (host == "localhost") {
    addr = net::ip::address_v4::loopback();
  } else {
    addr = net::ip::make_address(host, ec);
    if (ec) throw std::runtime_error("listen address \"" + host_port + "\": host must be an IP address");
  }
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  auto l = std::make_shared<Listener>(ioc_, shared_);
  l->acceptor.open(ep.protocol(), ec);
  if (!ec) l->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) l->acceptor.bind(ep, ec);
  if (!ec) l->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on " + host_port + ": " + ec.message());
  l->accept();
  listeners_.push_back(l);
}

std::vector<unsigned short> HttpServer::bound_ports() const {
  std::vector<unsigned short> out;
  for (const auto& l : listeners_) {
    beast::error_code ec;
    auto ep = l->acceptor.local_endpoint(ec);
    if (!ec) out.push_back(ep.port());
  }
  return out;
}

void HttpServer::stop() {
  for (auto& l : listeners_) {
    beast::error_code ec;
    l->acceptor.close(ec);
    l->backoff_timer.cancel();
  }
  listeners_.clear();
}

std::optional<HttpRequest> parse_http_request(std::string_view bytes, const HttpLimits& limits) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(limits.header_bytes));
  parser.body_limit(limits.body_bytes);
  parser.eager(true);
  beast::error_code ec;
  std::size_t used = parser.put(net::buffer(bytes.data(), bytes.size()), ec);
  (void)used;
  if (ec || !parser.is_done()) return std::nullopt;
  return to_request(parser.get());
}

}  // namespace pacs
