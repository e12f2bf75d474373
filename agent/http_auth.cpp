#include "agent/http_auth.h"

#include <crypt.h>
#include <openssl/evp.h>

#include <cstring>

namespace pacs {

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

}  // namespace

BasicAuth::BasicAuth(std::map<std::string, std::string> users)
    : users_(std::move(users)), pool_(users_.empty() ? 0 : kThreads) {}

BasicAuth::~BasicAuth() { pool_.stop(); }

std::optional<BasicAuth::Parsed> BasicAuth::parse(const std::string& authorization) const {
  if (authorization.rfind("Basic ", 0) != 0) return std::nullopt;
  auto decoded = base64_decode(std::string_view(authorization).substr(6));
  if (!decoded) return std::nullopt;
  auto colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  Parsed p;
  p.user = decoded->substr(0, colon);
  p.pass = decoded->substr(colon + 1);
  std::fill(decoded->begin(), decoded->end(), '\0');
  auto it = users_.find(p.user);
  p.known = it != users_.end();
  // Unknown users are checked against a configured hash (same cost), and
  // always fail.
  p.hash = p.known ? &it->second : &users_.begin()->second;
  p.key = sha256_hex(p.user + '\0' + p.pass + '\0' + (p.known ? *p.hash : std::string()));
  return p;
}

std::optional<BasicAuth::Verdict> BasicAuth::quick(const std::string& authorization) {
  if (users_.empty()) return Verdict::allow;
  auto p = parse(authorization);
  if (!p) return Verdict::deny;
  std::lock_guard lock(mu_);
  if (verified_.count(p->key)) return Verdict::allow;
  if (auto it = failed_.find(p->key); it != failed_.end()) {
    if (std::chrono::steady_clock::now() < it->second) return Verdict::deny;
    failed_.erase(it);
  }
  return std::nullopt;
}

BasicAuth::Verdict BasicAuth::check(const Parsed& p) {
  crypt_data data{};
  const char* out = crypt_r(p.pass.c_str(), p.hash->c_str(), &data);
  ++bcrypt_runs_;
  bool ok = p.known && out && *p.hash == out;
  std::memset(&data, 0, sizeof data);
  std::lock_guard lock(mu_);
  if (ok) {
    if (verified_.size() >= kMaxRemembered) verified_.clear();
    verified_.insert(p.key);
    return Verdict::allow;
  }
  auto now = std::chrono::steady_clock::now();
  if (failed_.size() >= kMaxRemembered) {
    std::erase_if(failed_, [&](const auto& kv) { return kv.second <= now; });
    if (failed_.size() >= kMaxRemembered) failed_.clear();
  }
  failed_[p.key] = now + kFailureMemory;
  return Verdict::deny;
}

void BasicAuth::verify(const std::string& authorization, std::function<void(Verdict)> done) {
  auto p = parse(authorization);
  if (!p) return done(Verdict::deny);
  if (pool_.queued() >= kMaxQueued) return done(Verdict::busy);
  auto shared_done = std::make_shared<std::function<void(Verdict)>>(std::move(done));
  bool posted = pool_.post([this, p = std::move(*p), shared_done] { (*shared_done)(check(p)); },
                           [shared_done] { (*shared_done)(Verdict::busy); });
  if (!posted) (*shared_done)(Verdict::busy);
}

}  // namespace pacs
