#include "agent/http_server.h"

#include <zlib.h>

#include <optional>
#include <stdexcept>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "agent/config.h"

namespace pacs {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct HttpServer::Shared {
  Shared(Logger& l, HttpHandler h, HttpLimits lim) : log(l), handler(std::move(h)), limits(lim) {}
  Logger& log;
  HttpHandler handler;
  HttpLimits limits;
  std::atomic<int> connections{0};
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

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, std::shared_ptr<HttpServer::Shared> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)) {
    ++shared_->connections;
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  ~Session() { --shared_->connections; }

  void run() { net::dispatch(stream_.get_executor(), beast::bind_front_handler(&Session::do_read, shared_from_this())); }

 private:
  void do_read() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->limits.header_bytes));
    parser_->body_limit(shared_->limits.body_bytes);
    stream_.expires_after(shared_->limits.read_timeout);
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_read, shared_from_this()));
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

    stream_.expires_after(shared_->limits.handler_timeout);
    auto self = shared_from_this();
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
    stream_.expires_after(shared_->limits.read_timeout);
    http::async_write(stream_, res_, beast::bind_front_handler(&Session::on_write, shared_from_this(), !keep_alive_));
  }

  void on_write(bool close, beast::error_code ec, std::size_t) {
    if (ec) return;
    if (close) return do_close();
    do_read();
  }

  void do_close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
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
          std::make_shared<Session>(std::move(socket), self->shared)->run();
        }
      }
      self->accept();
    });
  }
  net::io_context& ioc;
  tcp::acceptor acceptor;
  std::shared_ptr<Shared> shared;
};

HttpServer::HttpServer(net::io_context& ioc, Logger& log, HttpHandler handler, HttpLimits limits)
    : ioc_(ioc), shared_(std::make_shared<Shared>(log, std::move(handler), limits)) {}

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
