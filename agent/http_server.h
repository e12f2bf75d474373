// Async HTTP/1.1 server on Boost.Beast (one io_context thread).
//
// Handlers get a parsed request and a Respond callback that may be invoked
// later from any thread (e.g. when an on-demand probe finishes on a worker);
// the reply is written on the connection's own executor. Replies marked
// compressible are gzipped when the client sends Accept-Encoding: gzip.
//
// One host on the network must not be able to starve the scrapes:
// - a request (and, with TLS, the handshake before it) must arrive complete
//   within request_timeout from its first byte; an idle keep-alive
//   connection is closed after idle_timeout;
// - connections are capped in total and per client address; at a cap the
//   longest-idle connection (of that client, or of anyone) is closed to make
//   room, and only when none is idle is the new one refused;
// - a handler that has not replied by handler_timeout gets a 503 written for
//   it and the connection is closed;
// - basic auth runs bcrypt on a pool of its own (agent/http_auth.h);
// - when accept() fails (EMFILE...) the listener backs off instead of
//   spinning the io thread.
// Counters: pacs_agent_http_connections_rejected_total{reason},
// pacs_agent_http_connections_evicted_total, pacs_agent_http_accept_errors_total
// and the pacs_agent_http_connections gauge, in the registry given.
//
// Thread-safety: listen()/stop()/bound_ports() from the thread that owns the
// io_context (or before it runs); set_security() and Respond from any
// thread (Respond exactly once).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <prometheus/registry.h>

#include "probes/log.h"

namespace pacs {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query
  std::map<std::string, std::string> query;  // decoded; the last value of a repeated key wins
  std::map<std::string, std::string> headers;  // lower-case names
  std::string remote;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool compressible = false;
  static HttpReply text(int status, std::string body) {
    HttpReply r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
};

using Respond = std::function<void(HttpReply)>;
using HttpHandler = std::function<void(const HttpRequest&, Respond)>;

struct HttpLimits {
  std::size_t header_bytes = 16 * 1024;
  std::size_t body_bytes = 64 * 1024;
  // TLS handshake + a whole request, from the connection or the request's
  // first byte (slowloris bound); also bounds writing a reply.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
  // A connection waiting for its (next) request's first byte.
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(90)};
  // A handler that has not replied by then gets a 503, and the connection closes.
  std::chrono::milliseconds handler_timeout{std::chrono::seconds(330)};
  int max_connections = 256;
  int max_connections_per_client = 32;  // by remote IP address
};

// Optional transport security, as exporter-toolkit's web config offers:
// TLS (optionally requiring client certificates) and HTTP basic auth with
// bcrypt hashes. Applies to every endpoint.
struct HttpSecurity {
  std::string tls_cert_file, tls_key_file;  // both empty: plain HTTP
  std::string tls_client_ca_file;           // set: clients must present a cert signed by it
  std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash; empty: no auth
};

// Validates the TLS files (readable, key matches cert); throws
// std::runtime_error with the reason. Used by config validation too.
void check_tls_files(const std::string& cert, const std::string& key, const std::string& client_ca);
// True when `hash` is a bcrypt hash crypt(3) can verify ($2a$/$2b$/$2y$).
bool is_bcrypt_hash(const std::string& hash);

class HttpServer {
 public:
  // `metrics`: where the server's counters go (a private registry if null).
  HttpServer(boost::asio::io_context& ioc, Logger& log, HttpHandler handler, HttpLimits limits = {},
             HttpSecurity security = {}, std::shared_ptr<prometheus::Registry> metrics = nullptr);
  ~HttpServer();
  // Binds "host:port" (port 0 = any) and starts accepting. Throws
  // std::runtime_error naming the address when it cannot.
  void listen(const std::string& host_port);
  std::vector<unsigned short> bound_ports() const;
  void stop();  // closes the listeners; open connections finish their request
  // Replaces TLS certificate/key/client CA and the basic auth users for new
  // connections and requests (a reload). Throws std::runtime_error (and
  // changes nothing) when the TLS files do not load.
  void set_security(const HttpSecurity& security);
  int connections() const;

  struct Shared;  // state shared with sessions (handler, limits, counters)

 private:
  boost::asio::io_context& ioc_;
  std::shared_ptr<Shared> shared_;
  struct Listener;
  std::vector<std::shared_ptr<Listener>> listeners_;
};

// Parses one complete request from raw bytes the way a connection does
// (same limits, same decoding); nullopt when it is incomplete or invalid.
// For fuzzing and tests.
std::optional<HttpRequest> parse_http_request(std::string_view bytes, const HttpLimits& limits = {});

// gzip-encodes `in` (RFC 1952), for tests and the server.
std::string gzip_compress(const std::string& in);
std::string url_decode(std::string_view s);

}  // namespace pacs
