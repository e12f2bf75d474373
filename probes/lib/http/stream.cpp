#include "probes/lib/http/stream.h"

#include <curl/curl.h>
#include <poll.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "probes/lib/http/curl_detail.h"

namespace pacs::http {

namespace {

StreamStatus fail(Reason r, std::string message) { return {false, r, std::move(message)}; }
StreamStatus ok() { return {true, Reason::none, {}}; }

}  // namespace

Stream::Stream() : curl_(curl_easy_init()) {}

Stream::~Stream() {
  if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));  // closes the socket
}

StreamStatus Stream::connect(const std::string& host, int port, const std::optional<Tls>& tls,
                             const ProbeContext& ctx) {
  auto* h = static_cast<CURL*>(curl_);
  const bool v6 = host.find(':') != std::string::npos;
  where_ = (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  if (!h) return fail(Reason::internal, "curl_easy_init failed");
  auto remaining = ctx.remaining();
  if (remaining.count() <= 0) return fail(Reason::connect_timeout, "deadline reached before connecting to " + where_);
  // CONNECT_ONLY: curl resolves, connects and (https) does the TLS handshake,
  // then hands the connection over for curl_easy_send/recv. No HTTP is spoken.
  const std::string url = std::string(tls ? "https://" : "http://") + where_ + "/";
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining.count()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(remaining.count()));
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_SSL_ENABLE_ALPN, 0L);  // the peer speaks MLLP, not h2 or http/1.1
  if (tls) {
    curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, tls->insecure_skip_verify ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, tls->insecure_skip_verify ? 0L : 2L);
    if (!tls->ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, tls->ca_file.c_str());
    if (!tls->cert_file.empty()) {
      curl_easy_setopt(h, CURLOPT_SSLCERT, tls->cert_file.c_str());
      curl_easy_setopt(h, CURLOPT_SSLKEY, tls->key_file.c_str());
    }
  }
  CURLcode rc = curl_easy_perform(h);
  connect_seconds_ = detail::seconds(h, CURLINFO_CONNECT_TIME_T);
  if (tls) tls_seconds_ = detail::seconds(h, CURLINFO_APPCONNECT_TIME_T);
  if (ctx.tracing() && connect_seconds_ > 0) ctx.note("connected", where_ + " TCP connect " + detail::ms(connect_seconds_));
  if (rc == CURLE_OK) {
    connected_ = true;
    if (tls) {
      cert_not_after_ = detail::leaf_not_after(h);
      if (ctx.tracing()) {
        std::string t = "TLS handshake done at " + detail::ms(tls_seconds_);
        if (cert_not_after_) {
          char buf[64];
          std::snprintf(buf, sizeof buf, "; server certificate expires in %.1f days",
                        (*cert_not_after_ - static_cast<double>(std::time(nullptr))) / 86400);
          t += buf;
        }
        ctx.note("TLS", t);
      }
    }
    return ok();
  }
  std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  while (!detail.empty() && detail.back() == '\n') detail.pop_back();
  const std::string msg = where_ + ": " + detail;
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST: return fail(Reason::dns_failure, msg);
    case CURLE_COULDNT_CONNECT: return fail(Reason::connection_refused, msg);
    case CURLE_OPERATION_TIMEDOUT:
      if (connect_seconds_ == 0 && detail.find("Resolving timed out") != std::string::npos) {
        return fail(Reason::dns_failure, msg);
      }
      if (connect_seconds_ == 0) return fail(Reason::connect_timeout, msg);
      return fail(Reason::response_timeout, where_ + ": connected, but the TLS handshake did not finish before the deadline");
    default: break;
  }
  if (detail::is_tls_error(rc)) return fail(Reason::tls_failure, msg);
  if (tls && connect_seconds_ > 0 && (rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING)) {
    return fail(Reason::tls_failure, where_ + ": the peer closed the connection during the TLS handshake (" + detail + ")");
  }
  return fail(Reason::protocol_error, msg);
}

bool Stream::wait(bool for_write, const ProbeContext& ctx) {
  curl_socket_t fd = CURL_SOCKET_BAD;
  curl_easy_getinfo(static_cast<CURL*>(curl_), CURLINFO_ACTIVESOCKET, &fd);
  if (fd == CURL_SOCKET_BAD) return true;  // let the next call report the error
  for (;;) {
    auto left = ctx.remaining();
    if (left.count() <= 0) return false;
    pollfd p{fd, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n > 0) return true;  // readable, writable, or an error the next call reports
    if (n < 0 && errno != EINTR) return true;
  }
}

StreamStatus Stream::send_all(std::string_view data, const ProbeContext& ctx) {
  auto* h = static_cast<CURL*>(curl_);
  if (!connected_) return fail(Reason::internal, "send on a stream that is not connected");
  while (!data.empty()) {
    size_t n = 0;
    CURLcode rc = curl_easy_send(h, data.data(), data.size(), &n);
    if (rc == CURLE_OK) {
      data.remove_prefix(n);
      continue;
    }
    if (rc == CURLE_AGAIN) {
      if (!wait(true, ctx)) return fail(Reason::response_timeout, where_ + ": could not send before the deadline");
      continue;
    }
    return fail(Reason::connection_reset, where_ + ": sending failed: " + curl_easy_strerror(rc));
  }
  return ok();
}

StreamStatus Stream::receive_some(std::string& out, std::size_t max, const ProbeContext& ctx) {
  auto* h = static_cast<CURL*>(curl_);
  if (!connected_) return fail(Reason::internal, "receive on a stream that is not connected");
  char buf[16384];
  for (;;) {
    size_t n = 0;
    CURLcode rc = curl_easy_recv(h, buf, max < sizeof buf ? max : sizeof buf, &n);
    if (rc == CURLE_OK) {
      if (n == 0) return fail(Reason::connection_reset, where_ + ": the peer closed the connection");
      out.append(buf, n);
      return ok();
    }
    if (rc == CURLE_AGAIN) {
      if (!wait(false, ctx)) return fail(Reason::response_timeout, where_ + ": no answer before the deadline");
      continue;
    }
    return fail(Reason::connection_reset, where_ + ": receiving failed: " + curl_easy_strerror(rc));
  }
}

}  // namespace pacs::http
