// The HTTP client every HTTP-speaking probe kind shares (PACS job queues,
// DICOMweb, JSON endpoints): a blocking libcurl client bounded by the probe
// deadline, with TLS verification on by default, basic or bearer auth read
// from files (or an environment variable) at run time and never logged, a
// response body limit, no proxies from the environment, no redirects, and
// curl's errors mapped to the probe Reason set.
//
// Thread-safety: a Client is used by one thread at a time (it belongs to one
// probe run); clients are independent. global_init() runs once in main()
// before any thread (curl_global_init is not thread-safe).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probes/config_table.h"
#include "probes/probe.h"

namespace pacs::http {

struct Auth {
  enum class Type { none, basic, bearer } type = Type::none;
  std::string username;       // basic
  std::string password_file;  // basic: read at every run; trailing newline stripped
  std::string password_env;   // basic: or the name of an environment variable
  std::string token_file;     // bearer: read at every run (tokens rotate)
};

struct Tls {
  std::string ca_file;    // PEM bundle that verifies the server; empty = system store
  std::string cert_file;  // client certificate (PEM), with key_file
  std::string key_file;
  bool insecure_skip_verify = false;
};

struct Settings {
  Auth auth;
  Tls tls;
  std::size_t max_body_bytes = 16u << 20;
};

// Reads `auth = { type = "basic"|"bearer", username, password_file | password_env,
// token_file }` and `tls = { ca_file, cert_file, key_file, insecure_skip_verify }`
// from a target table. With `flat_keys`, also accepts username, password_file,
// password_env, ca_file and insecure_skip_verify at the table's top level (the
// queue kind's spelling); mixing both spellings is an error. Throws ConfigError.
Settings read_settings(const ConfigTable& t, bool flat_keys = false);
// Reads only `tls = { ca_file, cert_file, key_file, insecure_skip_verify }`
// (for kinds that speak TLS but not HTTP); nullopt when the table is absent.
std::optional<Tls> read_tls(const ConfigTable& t);
// An http:// or https:// URL without user:password@; fails `key` otherwise.
std::string read_url(const ConfigTable& t, std::string_view key = "url");

// `url` without its query string and fragment: what messages and transcripts
// show (tokens and patient identifiers travel in queries).
std::string redact_url(std::string_view url);
// Percent-encodes one path segment or query value (RFC 3986 unreserved kept).
std::string escape(std::string_view s);

struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // sent as is (POST/PUT)
};

struct Response {
  bool ok = false;  // a 2xx answer with a body within the limit
  Reason reason = Reason::internal;
  std::string message;  // one line; never credentials or the query string
  long status = 0;      // HTTP status, 0 when no answer arrived
  std::string content_type;
  std::string body;
  bool connected = false;
  // Seconds since the request started (curl's timers); 0 when not reached.
  double connect_seconds = 0, tls_seconds = 0, first_byte_seconds = 0, total_seconds = 0;
  std::optional<double> cert_not_after;  // https: the server certificate's notAfter (Unix time)
};

class Client {
 public:
  explicit Client(Settings settings);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One request, bounded by ctx.deadline (connect and total). Connections
  // are reused between requests of the same client. `display_url` is what
  // messages and transcripts show instead of the URL; empty = the URL
  // without its query (redact_url). Pass it when the path itself carries
  // something that must not be shown, e.g. a study UID a server returned.
  Response perform(const Request& req, const ProbeContext& ctx, std::string_view display_url = {});
  Response get(const std::string& url, const ProbeContext& ctx,
               std::vector<std::string> headers = {"Accept: application/json"});

 private:
  bool load_credentials(Response& fail);
  Settings s_;
  void* curl_ = nullptr;
  bool credentials_loaded_ = false;
  std::string secret_;  // password or token, wiped on destruction
};

// Once in main() before threads (idempotent), and after all threads end.
void global_init();
void global_shutdown();
std::string curl_version_line();  // "libcurl 7.88.1 OpenSSL/3.0.x", for --version

}  // namespace pacs::http
