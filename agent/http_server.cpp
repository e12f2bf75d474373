#include "agent/http_server.h"

#include <crypt.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <mutex>
#include <set>

#include <optional>
#include <stdexcept>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "agent/config.h"

namespace pacs {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace ssl = net::ssl;

namespace {
std::string sha256_hex(const std::string& in) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(in.data(), in.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0 || in.size() > 4096) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t pad = 0;
  if (in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

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

struct HttpServer::Shared {
  Shared(Logger& l, HttpHandler h, HttpLimits lim, HttpSecurity sec)
      : log(l), handler(std::move(h)), limits(lim), security(std::move(sec)) {
    if (!security.tls_cert_file.empty()) tls = make_tls_context(security);
  }
  Logger& log;
  HttpHandler handler;
  HttpLimits limits;
  HttpSecurity security;
  std::shared_ptr<ssl::context> tls;
  std::atomic<int> connections{0};

  // bcrypt is deliberately slow (~50-100 ms): remember verified credentials
  // (by SHA-256, never in clear) so a scraper pays it once.
  bool authorized(const std::string& authorization) {
    if (security.basic_auth_users.empty()) return true;
    if (authorization.rfind("Basic ", 0) != 0) return false;
    auto decoded = base64_decode(authorization.substr(6));
    if (!decoded) return false;
    auto colon = decoded->find(':');
    if (colon == std::string::npos) return false;
    std::string user = decoded->substr(0, colon), pass = decoded->substr(colon + 1);
    auto it = security.basic_auth_users.find(user);
    if (it == security.basic_auth_users.end()) return false;
    std::string key = sha256_hex(user + '\0' + pass + '\0' + it->second);
    {
      std::lock_guard lock(cache_mu);
      if (verified.count(key)) return true;
    }
    crypt_data data{};
    const char* out = crypt_r(pass.c_str(), it->second.c_str(), &data);
    bool ok = out && it->second == out;
    if (ok) {
      std::lock_guard lock(cache_mu);
      if (verified.size() > 1000) verified.clear();
      verified.insert(key);
    }
    return ok;
  }
  std::mutex cache_mu;
  std::set<std::string> verified;
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

// Stream is beast::tcp_stream (plain HTTP) or beast::ssl_stream<beast::tcp_stream>.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  template <class... ExtraArgs>
  Session(tcp::socket&& socket, std::shared_ptr<HttpServer::Shared> shared, ExtraArgs&&... extra)
      : stream_(std::move(socket), std::forward<ExtraArgs>(extra)...), shared_(std::move(shared)) {
    ++shared_->connections;
    beast::error_code ec;
    auto ep = lowest().socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  ~Session() { --shared_->connections; }

  void run() {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->lowest().expires_after(self->shared_->limits.read_timeout);
        self->stream_.async_handshake(ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) {
            self->shared_->log.debug("TLS handshake failed", {{"remote", self->remote_}, {"err", ec.message()}});
            return;
          }
          self->do_read();
        });
      } else {
        self->do_read();
      }
    });
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void do_read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->limits.header_bytes));
    parser_->body_limit(shared_->limits.body_bytes);
    lowest().expires_after(shared_->limits.read_timeout);
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return do_close();
    if (ec == http::error::header_limit) return reply_error(http::status::request_header_fields_too_large, "request header too large\n");
    if (ec == http::error::body_limit) return reply_error(http::status::payload_too_large, "request body too large\n");
    if (ec == beast::error::timeout) return;  // slow or idle client: drop it
    if (ec) {
      if (ec.category() == beast::error_code(http::error::bad_target).category() && ec != http::error::partial_message) {
        return reply_error(http::status::bad_request, "bad request\n");
      }
      return;
    }
    auto& req = parser_->get();
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
    r.remote = remote_;
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    gzip_ok_ = accepts_gzip(r.header("accept-encoding"));
    head_ = req.method() == http::verb::head;

    if (!shared_->authorized(r.header("authorization"))) {
      HttpReply deny = HttpReply::text(401, "Unauthorized\n");
      deny.headers.push_back({"WWW-Authenticate", "Basic realm=\"pacs-agent\", charset=\"UTF-8\""});
      return write(std::move(deny));
    }
    lowest().expires_after(shared_->limits.handler_timeout);
    auto self = this->shared_from_this();
    auto done = std::make_shared<std::atomic<bool>>(false);
    Respond respond = [self, done](HttpReply reply) {
      if (done->exchange(true)) return;  // exactly once
      net::post(self->stream_.get_executor(), [self, reply = std::move(reply)]() mutable { self->write(std::move(reply)); });
    };
    try {
      shared_->handler(r, respond);
    } catch (const std::exception& e) {
      shared_->log.error("http handler threw", {{"path", r.path}, {"err", e.what()}});
      respond(HttpReply::text(500, "internal error\n"));
    }
  }

  void reply_error(http::status status, const char* body) {
    keep_alive_ = false;
    version_ = 11;
    head_ = false;
    gzip_ok_ = false;
    write(HttpReply::text(static_cast<int>(status), body));
  }

  void write(HttpReply reply) {
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
    lowest().expires_after(shared_->limits.read_timeout);
    http::async_write(stream_, res_, beast::bind_front_handler(&Session::on_write, this->shared_from_this(), !keep_alive_));
  }

  void on_write(bool close, beast::error_code ec, std::size_t) {
    if (ec) return;
    if (close) return do_close();
    do_read();
  }

  void do_close() {
    if constexpr (kTls) {
      lowest().expires_after(std::chrono::seconds(5));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {});
    } else {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::shared_ptr<HttpServer::Shared> shared_;
  std::string remote_;
  bool keep_alive_ = true, gzip_ok_ = false, head_ = false;
  unsigned version_ = 11;
};

}  // namespace

struct HttpServer::Listener : std::enable_shared_from_this<HttpServer::Listener> {
  Listener(net::io_context& ioc, std::shared_ptr<Shared> shared) : ioc(ioc), acceptor(ioc), shared(std::move(shared)) {}
  void accept() {
    acceptor.async_accept(net::make_strand(ioc), [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !self->acceptor.is_open()) return;
      if (!ec) {
        if (self->shared->connections.load() >= self->shared->limits.max_connections) {
          beast::error_code ignored;
          socket.close(ignored);  // over the cap: refuse cheaply
        } else {
          if (self->shared->tls) {
            std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket), self->shared,
                                                                             *self->shared->tls)
                ->run();
          } else {
            std::make_shared<Session<beast::tcp_stream>>(std::move(socket), self->shared)->run();
          }
        }
      }
      self->accept();
    });
  }
  net::io_context& ioc;
  tcp::acceptor acceptor;
  std::shared_ptr<Shared> shared;
};

HttpServer::HttpServer(net::io_context& ioc, Logger& log, HttpHandler handler, HttpLimits limits,
                       HttpSecurity security)
    : ioc_(ioc), shared_(std::make_shared<Shared>(log, std::move(handler), limits, std::move(security))) {}

HttpServer::~HttpServer() { stop(); }

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
  }
  listeners_.clear();
}

}  // namespace pacs
