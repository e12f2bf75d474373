#include "probes/queue/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace pacs::queue {

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

}  // namespace

HttpClient::HttpClient(const HttpSettings& settings) : s_(settings), curl_(curl_easy_init()) {}

HttpClient::~HttpClient() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
  // Do not leave the secret in freed memory longer than needed.
  std::fill(password_.begin(), password_.end(), '\0');
}

std::string HttpClient::escape(const std::string& s) {
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

bool HttpClient::load_credentials(HttpResult& fail) {
  if (credentials_loaded_ || s_.username.empty()) return true;
  if (!s_.password_file.empty()) {
    std::ifstream in(s_.password_file, std::ios::binary);
    if (!in) {
      fail.reason = Reason::io_error;
      fail.message = "cannot read password_file " + s_.password_file + ": " + std::strerror(errno);
      return false;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    password_ = ss.str();
    while (!password_.empty() && (password_.back() == '\n' || password_.back() == '\r')) password_.pop_back();
  } else if (!s_.password_env.empty()) {
    const char* v = std::getenv(s_.password_env.c_str());
    if (!v) {
      fail.reason = Reason::io_error;
      fail.message = "environment variable " + s_.password_env + " (password_env) is not set";
      return false;
    }
    password_ = v;
  }
  credentials_loaded_ = true;
  return true;
}

HttpResult HttpClient::get(const std::string& url, const ProbeContext& ctx) {
  HttpResult r;
  auto* h = static_cast<CURL*>(curl_);
  if (!h) {
    r.message = "curl_easy_init failed";
    return r;
  }
  if (!load_credentials(r)) return r;
  auto remaining = ctx.remaining();
  if (remaining.count() <= 0) {
    r.reason = Reason::connect_timeout;
    r.message = "deadline reached before GET " + url;
    return r;
  }

  Sink sink{&r.body, s_.max_body_bytes};
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
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
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, s_.insecure_skip_verify ? 0L : 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, s_.insecure_skip_verify ? 0L : 2L);
  if (!s_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, s_.ca_file.c_str());
  if (!s_.username.empty()) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERNAME, s_.username.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, password_.c_str());
  }
  struct curl_slist* headers = curl_slist_append(nullptr, "Accept: application/json");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(headers);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  while (!detail.empty() && detail.back() == '\n') detail.pop_back();

  if (rc == CURLE_OK) {
    if (r.status < 200 || r.status > 299) {
      r.reason = Reason::http_status;
      r.message = "GET " + url + ": HTTP " + std::to_string(r.status);
      return r;
    }
    r.ok = true;
    r.reason = Reason::none;
    return r;
  }
  r.message = "GET " + url + ": " + detail;
  if (sink.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    r.reason = Reason::protocol_error;
    r.message = "GET " + url + ": response body exceeds " + std::to_string(s_.max_body_bytes) + " bytes";
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
      // Connected, but the server did not finish answering before the
      // deadline: the peer is not speaking HTTP the way we need.
      r.reason = Reason::protocol_error;
      r.message = "GET " + url + ": connected, but no complete HTTP response before the deadline (" + detail + ")";
    }
  } else if (is_tls_error(rc)) {
    r.reason = Reason::tls_failure;
  } else {
    r.reason = Reason::protocol_error;
  }
  return r;
}

}  // namespace pacs::queue
