// Config keys of the shared HTTP client (see http_client.h).
#include <regex>

#include "probes/lib/http/http_client.h"

namespace pacs::http {

namespace {

std::string absolute_file(const ConfigTable& t, std::string_view key) {
  std::string v = t.string(key, "");
  if (t.has(key) && v.empty()) t.fail(key, "must not be empty");
  if (!v.empty() && v.front() != '/') t.fail(key, "must be an absolute path");
  return v;
}

Auth read_auth_table(const ConfigTable& a) {
  Auth out;
  std::string type = a.string("type");
  if (type == "basic") {
    out.type = Auth::Type::basic;
    out.username = a.string("username");
    if (out.username.empty() || out.username.find(':') != std::string::npos) {
      a.fail("username", "must not be empty or contain ':'");
    }
    out.password_file = absolute_file(a, "password_file");
    out.password_env = a.string("password_env", "");
    if (out.password_file.empty() == out.password_env.empty()) {
      a.fail_table("basic auth needs exactly one of password_file or password_env (passwords are never written in the config)");
    }
  } else if (type == "bearer") {
    out.type = Auth::Type::bearer;
    out.token_file = absolute_file(a, "token_file");
    if (out.token_file.empty()) a.fail_table("bearer auth needs token_file (re-read at every run)");
  } else {
    a.fail("type", "must be \"basic\" or \"bearer\"");
  }
  return out;
}

}  // namespace

std::optional<Tls> read_tls(const ConfigTable& t) {
  auto tl = t.table("tls");
  if (!tl) return std::nullopt;
  Tls out;
  out.ca_file = absolute_file(*tl, "ca_file");
  out.cert_file = absolute_file(*tl, "cert_file");
  out.key_file = absolute_file(*tl, "key_file");
  if (out.cert_file.empty() != out.key_file.empty()) {
    tl->fail(out.cert_file.empty() ? "key_file" : "cert_file", "cert_file and key_file go together: set both or neither");
  }
  out.insecure_skip_verify = tl->boolean("insecure_skip_verify", false);
  return out;
}

std::string read_url(const ConfigTable& t, std::string_view key) {
  std::string url = t.string(key);
  static const std::regex re(R"(^https?://[^/?#@\s]+(/[^\s]*)?$)", std::regex::icase);
  if (!std::regex_match(url, re)) {
    if (url.find('@') != std::string::npos && url.find("://") != std::string::npos) {
      t.fail(key, "must not contain credentials; use username with password_file or password_env");
    }
    t.fail(key, "must be an http:// or https:// URL");
  }
  return url;
}

Settings read_settings(const ConfigTable& t, bool flat_keys) {
  Settings s;
  bool nested = t.has("auth") || t.has("tls");
  bool flat = flat_keys && (t.has("username") || t.has("password_file") || t.has("password_env") ||
                            t.has("ca_file") || t.has("insecure_skip_verify"));
  if (nested && flat) {
    t.fail(t.has("auth") ? "auth" : "tls",
           "use either the auth/tls tables or the flat keys (username, password_file, password_env, ca_file, "
           "insecure_skip_verify), not both");
  }
  if (auto a = t.table("auth")) s.auth = read_auth_table(*a);
  if (auto tl = read_tls(t)) s.tls = *tl;
  if (flat_keys && !nested) {
    std::string user = t.string("username", "");
    std::string file = t.string("password_file", "");
    std::string env = t.string("password_env", "");
    if (!file.empty() && !env.empty()) t.fail("password_env", "set either password_file or password_env, not both");
    if (!user.empty() && file.empty() && env.empty()) {
      t.fail("username", "needs password_file or password_env (passwords are never written in the config)");
    }
    if (user.empty() && (!file.empty() || !env.empty())) t.fail(!file.empty() ? "password_file" : "password_env", "needs username");
    if (!file.empty() && file.front() != '/') t.fail("password_file", "must be an absolute path");
    if (!user.empty()) {
      s.auth.type = Auth::Type::basic;
      s.auth.username = user;
      s.auth.password_file = file;
      s.auth.password_env = env;
    }
    s.tls.ca_file = t.string("ca_file", "");
    if (!s.tls.ca_file.empty() && s.tls.ca_file.front() != '/') t.fail("ca_file", "must be an absolute path");
    s.tls.insecure_skip_verify = t.boolean("insecure_skip_verify", false);
  }
  return s;
}

}  // namespace pacs::http
