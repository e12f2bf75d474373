#include "probes/lib/http/http_client.h"
#include "probes/lib/http/curl_detail.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>
#include <sstream>

namespace pacs::http {

using detail::is_tls_error;
using detail::leaf_not_after;
using detail::ms;
using detail::seconds;

namespace {

struct Sink {
  std::string* body;
  std::size_t limit;
  bool too_large = false;
};

size_t write_cb(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<Sink*>(user);
  size_t len = size * n;
  if (sink->body->size() + len > sink->limit) {
    sink->too_large = true;
    return 0;  // makes curl fail with CURLE_WRITE_ERROR
  }
  sink->body->append(data, len);
  return len;
}

std::once_flag g_init_once;

}  // namespace

std::string redact_url(std::string_view url) {
  auto cut = url.find_first_of("?#");
  std::string out(url.substr(0, cut));
  if (cut != std::string_view::npos && url[cut] == '?') out += "?...";
  return out;
}

std::string escape(std::string_view s) {
  std::string out;
  static const char* hex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

Client::Client(Settings settings) : s_(std::move(settings)), curl_(curl_easy_init()) {}

Client::~Client() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
  std::fill(secret_.begin(), secret_.end(), '\0');  // do not leave the secret in freed memory
}

bool Client::load_credentials(Response& fail) {
  const Auth& a = s_.auth;
  if (credentials_loaded_ || a.type == Auth::Type::none) return true;
  auto read_file = [&](const std::string& path, const char* key) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      fail.reason = Reason::io_error;
      fail.message = std::string("cannot read ") + key + " " + path + ": " + std::strerror(errno);
      return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    secret_ = ss.str();
    while (!secret_.empty() && (secret_.back() == '\n' || secret_.back() == '\r')) secret_.pop_back();
    return true;
  };
  if (a.type == Auth::Type::bearer) {
    if (!read_file(a.token_file, "token_file")) return false;
    if (secret_.empty()) {
      fail.reason = Reason::io_error;
      fail.message = "token_file " + a.token_file + " is empty";
      return false;
    }
  } else if (!a.password_file.empty()) {
    if (!read_file(a.password_file, "password_file")) return false;
  } else if (!a.password_env.empty()) {
    const char* v = std::getenv(a.password_env.c_str());
    if (!v) {
      fail.reason = Reason::io_error;
      fail.message = "environment variable " + a.password_env + " (password_env) is not set";
      return false;
    }
    secret_ = v;
  }
  credentials_loaded_ = true;
  return true;
}

Response Client::get(const std::string& url, const ProbeContext& ctx, std::vector<std::string> headers) {
  Request r;
  r.url = url;
  r.headers = std::move(headers);
  return perform(r, ctx);
}

Response Client::perform(const Request& req, const ProbeContext& ctx, std::string_view display_url) {
  Response r;
  auto* h = static_cast<CURL*>(curl_);
  const std::string shown_url = display_url.empty() ? redact_url(req.url) : std::string(display_url);
  const std::string shown = req.method + " " + shown_url;
  if (!h) {
    r.message = "curl_easy_init failed";
    return r;
  }
  if (!load_credentials(r)) return r;
  auto remaining = ctx.remaining();
  if (remaining.count() <= 0) {
    r.reason = Reason::connect_timeout;
    r.message = "deadline reached before " + shown;
    return r;
  }
  if (ctx.tracing()) ctx.note(req.method, shown_url + (req.body.empty() ? "" : " (" + std::to_string(req.body.size()) + " bytes)"));

  Sink sink{&r.body, s_.max_body_bytes};
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_PROXY, "");  // never a proxy from *_proxy in the environment
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining.count()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(remaining.count()));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(s_.max_body_bytes));
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "pacs-agent");
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");  // whatever curl can decode
  curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, s_.tls.insecure_skip_verify ? 0L : 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, s_.tls.insecure_skip_verify ? 0L : 2L);
  if (!s_.tls.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, s_.tls.ca_file.c_str());
  if (!s_.tls.cert_file.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERT, s_.tls.cert_file.c_str());
    curl_easy_setopt(h, CURLOPT_SSLKEY, s_.tls.key_file.c_str());
  }
  if (s_.auth.type == Auth::Type::basic) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERNAME, s_.auth.username.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, secret_.c_str());
  } else if (s_.auth.type == Auth::Type::bearer) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
    curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, secret_.c_str());
  }
  if (req.method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else if (req.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    if (!req.body.empty() || req.method == "POST" || req.method == "PUT") {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    }
  }
  struct curl_slist* headers = nullptr;
  for (const auto& hd : req.headers) headers = curl_slist_append(headers, hd.c_str());
  if (!req.body.empty()) headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(headers);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  if (char* ct = nullptr; curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct) r.content_type = ct;
  r.connect_seconds = seconds(h, CURLINFO_CONNECT_TIME_T);
  r.tls_seconds = seconds(h, CURLINFO_APPCONNECT_TIME_T);
  r.first_byte_seconds = seconds(h, CURLINFO_STARTTRANSFER_TIME_T);
  r.total_seconds = seconds(h, CURLINFO_TOTAL_TIME_T);
  r.connected = r.connect_seconds > 0 || r.status > 0;
  if (req.url.rfind("https:", 0) == 0 || req.url.rfind("HTTPS:", 0) == 0) r.cert_not_after = leaf_not_after(h);
  long os_errno = 0;
  curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
  std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  while (!detail.empty() && detail.back() == '\n') detail.pop_back();
  // curl's messages may quote the URL; show it as everywhere else.
  if (shown_url != req.url) {
    for (auto p = detail.find(req.url); p != std::string::npos; p = detail.find(req.url, p + shown_url.size())) {
      detail.replace(p, req.url.size(), shown_url);
    }
  }
  if (ctx.tracing()) {
    if (r.connected) ctx.note("connected", "TCP connect " + ms(r.connect_seconds));
    if (r.tls_seconds > 0) {
      std::string t = "TLS handshake done at " + ms(r.tls_seconds);
      if (r.cert_not_after) {
        double days = (*r.cert_not_after - static_cast<double>(std::time(nullptr))) / 86400;
        char buf[64];
        std::snprintf(buf, sizeof buf, "; server certificate expires in %.1f days", days);
        t += buf;
      }
      ctx.note("TLS", t);
    }
    if (r.status > 0) {
      ctx.note("HTTP " + std::to_string(r.status),
               "first byte " + ms(r.first_byte_seconds) + ", total " + ms(r.total_seconds) + ", " +
                   std::to_string(r.body.size()) + " bytes" + (r.content_type.empty() ? "" : ", " + r.content_type));
    }
  }

  if (rc == CURLE_OK) {
    if (r.status < 200 || r.status > 299) {
      r.reason = Reason::http_status;
      r.message = shown + ": HTTP " + std::to_string(r.status);
      return r;
    }
    r.ok = true;
    r.reason = Reason::none;
    return r;
  }
  r.message = shown + ": " + detail;
  if (sink.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    r.reason = Reason::protocol_error;
    r.message = shown + ": response body exceeds " + std::to_string(s_.max_body_bytes) + " bytes";
  } else if (rc == CURLE_COULDNT_RESOLVE_HOST) {
    r.reason = Reason::dns_failure;
  } else if (rc == CURLE_COULDNT_CONNECT) {
    r.reason = Reason::connection_refused;
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    curl_off_t connected = 0;
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connected);
    if (connected == 0 && detail.find("Resolving timed out") != std::string::npos) {
      r.reason = Reason::dns_failure;
    } else if (connected == 0) {
      r.reason = Reason::connect_timeout;
    } else {
      r.reason = Reason::response_timeout;
      r.message = shown + ": connected, but no complete response before the deadline";
    }
  } else if (is_tls_error(rc)) {
    r.reason = Reason::tls_failure;
  } else if (rc == CURLE_GOT_NOTHING) {
    r.reason = Reason::connection_reset;
    r.message = shown + ": the server closed the connection without answering";
  } else if (rc == CURLE_PARTIAL_FILE) {
    r.reason = Reason::connection_reset;  // a FIN where the rest of the body should be: the same cut as a reset
    r.message = shown + ": the server closed the connection before the whole answer arrived";
  } else if ((rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR) && (os_errno == ECONNRESET || os_errno == EPIPE)) {
    r.reason = Reason::connection_reset;
    r.message = shown + ": connection reset by the server";
  } else {
    r.reason = Reason::protocol_error;
  }
  return r;
}

void global_init() {
  std::call_once(g_init_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

void global_shutdown() {
  // curl_global_cleanup is reference counted against curl_global_init; one
  // init, one cleanup.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_cleanup(); });
}

std::string curl_version_line() {
  const curl_version_info_data* v = curl_version_info(CURLVERSION_NOW);
  std::string s = std::string("libcurl ") + (v && v->version ? v->version : "?");
  if (v && v->ssl_version) s += std::string(" ") + v->ssl_version;
  return s;
}

namespace detail {

bool is_tls_error(CURLcode c) {
  switch (c) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

double seconds(CURL* h, CURLINFO what) {
  curl_off_t us = 0;
  curl_easy_getinfo(h, what, &us);
  return static_cast<double>(us) / 1e6;
}

// curl (OpenSSL backend) reports "Expire date" as ASN1_TIME_print does:
// "Mar  8 12:00:00 2027 GMT".
static std::optional<double> parse_expire_date(const char* s) {
  std::tm tm{};
  const char* end = ::strptime(s, "%b %d %H:%M:%S %Y GMT", &tm);
  if (!end) return std::nullopt;
  return static_cast<double>(timegm(&tm));
}

std::optional<double> leaf_not_after(CURL* h) {
  struct curl_certinfo* ci = nullptr;
  if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci || ci->num_of_certs < 1) return std::nullopt;
  for (curl_slist* l = ci->certinfo[0]; l; l = l->next) {
    if (std::strncmp(l->data, "Expire date:", 12) == 0) {
      const char* v = l->data + 12;
      while (*v == ' ') ++v;
      return parse_expire_date(v);
    }
  }
  return std::nullopt;
}

std::string ms(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", s * 1000);
  return buf;
}

}  // namespace detail

}  // namespace pacs::http
