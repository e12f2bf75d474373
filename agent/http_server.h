// Async HTTP/1.1 server on Boost.Beast (one io_context thread).
//
// Handlers get a parsed request and a Respond callback that may be invoked
// later from any thread (e.g. when an on-demand probe finishes on a worker);
// the reply is written on the connection's own executor. Every read has a
// timeout; headers and bodies have size limits; the number of open
// connections is capped. Replies marked compressible are gzipped when the
// client sends Accept-Encoding: gzip.
//
// Thread-safety: listen()/stop()/bound_ports() from the thread that owns the
// io_context (or before it runs); Respond from any thread, exactly once.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

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
  std::chrono::seconds read_timeout{30};     // per request, from its first byte or the idle keep-alive
  std::chrono::seconds handler_timeout{300};  // a reply not written by then closes the connection
  int max_connections = 256;
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
  HttpServer(boost::asio::io_context& ioc, Logger& log, HttpHandler handler, HttpLimits limits = {},
             HttpSecurity security = {});
  ~HttpServer();
  // Binds "host:port" (port 0 = any) and starts accepting. Throws
  // std::runtime_error naming the address when it cannot.
  void listen(const std::string& host_port);
  std::vector<unsigned short> bound_ports() const;
  void stop();  // closes the listeners; open connections finish their request

  struct Shared;  // state shared with sessions (handler, limits, counters)

 private:
  boost::asio::io_context& ioc_;
  std::shared_ptr<Shared> shared_;
  struct Listener;
  std::vector<std::shared_ptr<Listener>> listeners_;
};

// gzip-encodes `in` (RFC 1952), for tests and the server.
std::string gzip_compress(const std::string& in);
std::string url_decode(std::string_view s);

}  // namespace pacs
