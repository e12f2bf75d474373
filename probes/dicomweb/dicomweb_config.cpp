// [[dicomweb]] table -> one ProbeSpec per check (dicomweb_qido,
// dicomweb_wado, dicomweb_stow), and the kind's descriptor. Every default
// lives here; README.md lists them.
#include <algorithm>
#include <cctype>
#include <regex>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dctag.h"

#include "probes/dicomweb/dicomweb.h"
#include "probes/lib/dcmtk/dcmtk_setup.h"

namespace pacs::dicomweb {

namespace {

const std::vector<std::string>& known_checks() {
  static const std::vector<std::string> c = {"qido", "wado", "stow"};
  return c;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::vector<std::string> read_checks(const ConfigTable& t) {
  auto names = t.string_array("checks", {"qido"});
  if (names.empty()) t.fail("checks", "must not be empty (valid: " + join(known_checks()) + ")");
  std::vector<std::string> out;
  for (const auto& n : names) {
    if (std::find(known_checks().begin(), known_checks().end(), n) == known_checks().end()) {
      t.fail("checks", "unknown check \"" + n + "\" (valid: " + join(known_checks()) + ")");
    }
    if (std::find(out.begin(), out.end(), n) != out.end()) t.fail("checks", "duplicate check \"" + n + "\"");
    out.push_back(n);
  }
  return out;
}

// QIDO-RS matching keys: DICOM keywords from the DCMTK dictionary (or tags
// as 8 hex digits), as PS3.18 allows them in a query.
std::vector<QueryKey> read_keys(const ConfigTable& parent, std::vector<QueryKey> def) {
  auto kt = parent.table("keys");
  if (!kt) return def;
  static const std::regex hex_tag("^[0-9A-Fa-f]{8}$");
  std::vector<QueryKey> out;
  for (const auto& k : kt->keys()) {
    auto v = kt->optional_string(k);  // marks the key read; fails when not a string
    if (!std::regex_match(k, hex_tag)) {
      if (!dcmDataDict.isDictionaryLoaded()) {
        parent.fail("keys", "cannot check attribute names: the DICOM data dictionary is not loaded (set DCMDICTPATH)");
      }
      DcmTag tag;
      if (DcmTag::findTagFromName(k.c_str(), tag).bad()) {
        kt->fail(k, "unknown DICOM attribute \"" + k +
                        "\" (not in the DCMTK data dictionary; use keywords such as StudyDate)");
      }
      if (tag.getEVR() == EVR_SQ) kt->fail(k, "sequence attributes cannot be matching keys");
    }
    for (unsigned char c : *v)
      if (c < 0x20) kt->fail(k, "must not contain control characters");
    out.push_back({k, *v});
  }
  return out;
}

std::string strip_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

std::vector<Reason> reasons(std::string_view check, bool https) {
  std::vector<Reason> r = {Reason::dns_failure,      Reason::connection_refused, Reason::connect_timeout,
                           Reason::connection_reset, Reason::protocol_error,     Reason::response_timeout,
                           Reason::http_status,      Reason::io_error};
  if (https) r.push_back(Reason::tls_failure);
  if (check == "wado") r.push_back(Reason::no_match);
  if (check == "stow") {
    r.push_back(Reason::stored_not_found);
    r.push_back(Reason::dimse_status);
  }
  return r;
}

std::vector<ProbeSpec> parse_target(const ConfigTable& t, const TargetCommon& common, const ConfigTable&) {
  Target target;
  target.url = strip_slash(http::read_url(t));
  target.http = http::read_settings(t);
  const bool https = target.url.size() > 5 && std::tolower(static_cast<unsigned char>(target.url[4])) == 's';
  auto checks = read_checks(t);
  auto has = [&](const std::string& c) { return std::find(checks.begin(), checks.end(), c) != checks.end(); };
  for (const auto& c : known_checks()) {
    if (t.has(c) && !has(c)) t.fail(c, "settings for \"" + c + "\" but \"" + c + "\" is not in checks");
  }
  std::vector<QueryKey> qido_keys = {{"StudyDate", "today"}};
  if (auto q = t.table("qido")) qido_keys = read_keys(*q, {});
  WadoOptions wado;
  if (auto w = t.table("wado")) {
    wado.study_uid = w->string("study_uid", "");
    static const std::regex uid_re("^[0-9]+(\\.[0-9]+)*$");
    if (w->has("study_uid") && (wado.study_uid.size() > 64 || !std::regex_match(wado.study_uid, uid_re))) {
      w->fail("study_uid", "must be a DICOM UID (digits and dots, at most 64 characters)");
    }
    if (w->has("study_uid") && w->has("keys")) w->fail("keys", "set either study_uid or keys, not both");
    wado.keys = read_keys(*w, {});
  }

  std::optional<canary::Settings> stow;
  if (has("stow")) {
    auto st = t.table("stow");
    if (!st) {
      t.fail("checks",
             "\"stow\" writes a canary object into the archive: it needs a [dicomweb.stow] table with uid_root "
             "and cleanup");
    }
    stow = canary::read_settings(*st);
  }

  std::vector<ProbeSpec> specs;
  for (const auto& c : checks) {
    if (c == "qido") {
      specs.push_back(make_spec(kind(), c, common, t, reasons(c, https),
                                [target, qido_keys] { return std::make_unique<QidoProbe>(target, qido_keys); }));
    } else if (c == "wado") {
      specs.push_back(make_spec(kind(), c, common, t, reasons(c, https),
                                [target, wado] { return std::make_unique<WadoProbe>(target, wado); }));
    } else if (c == "stow") {
      specs.push_back(make_spec(kind(), c, common, t, reasons(c, https),
                                [target, s = *stow] { return std::make_unique<StowProbe>(target, s); }));
    }
  }
  return specs;
}

const Kind& kind() {
  static const Kind k{
      .name = "dicomweb",
      .summary = "DICOMweb APIs (QIDO-RS, WADO-RS, STOW-RS) as web viewers use them",
      .checks = {{"qido", "dicomweb_qido", reasons("qido", true)},
                 {"wado", "dicomweb_wado", reasons("wado", true)},
                 {"stow", "dicomweb_stow", reasons("stow", true)}},
      .parse = &parse_target,
      .init = [](Logger& log) {
        http::global_init();
        dcmtk::setup(log);
      },
      .shutdown = [] {
        dcmtk::teardown();
        http::global_shutdown();
      },
      .versions = [] { return std::vector<std::string>{http::curl_version_line(), dcmtk::version_line()}; },
  };
  return k;
}

}  // namespace pacs::dicomweb

namespace pacs::probe_kinds {
const Kind& dicomweb() { return dicomweb::kind(); }
}  // namespace pacs::probe_kinds
