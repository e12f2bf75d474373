// [[dicom]] table -> one ProbeSpec per check (dicom_echo, dicom_find,
// dicom_worklist, dicom_store, dicom_retrieve, dicom_commit, dicom_access), and the kind's
// descriptor. Every default lives here; README.md lists them.
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dctag.h"

#include "probes/dicom/dicom_probe.h"
#include "probes/lib/dcmtk/dcmtk_setup.h"

namespace pacs::dicom {

constexpr const char* kDefaultCallingAe = "PACS_AGENT";

bool valid_ae_title(const std::string& s) {
  if (s.empty() || s.size() > 16) return false;
  bool non_space = false;
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e || c == '\\') return false;
    if (c != ' ') non_space = true;
  }
  return non_space;
}

namespace {

std::string read_ae(const ConfigTable& t, std::string_view key, std::optional<std::string> def) {
  auto v = def ? t.string(key, *def) : t.string(key);
  if (!valid_ae_title(v)) t.fail(key, "must be 1..16 printable ASCII characters without backslash");
  return v;
}

// DCMTK 3.6.7 splits "host:port" on the first ':' and connects over IPv4
// only, so IPv6 literals cannot work; say so instead of failing at run time.
void validate_host(const ConfigTable& t, const std::string& host) {
  if (host.empty()) t.fail("host", "must not be empty");
  if (host.find(':') != std::string::npos) {
    t.fail("host", "must be an IPv4 address or a host name (DCMTK 3.6.7 does not connect over IPv6)");
  }
  for (unsigned char c : host) {
    if (!std::isalnum(c) && c != '.' && c != '-' && c != '_') {
      t.fail("host", "must be an IPv4 address or a host name");
    }
  }
}

constexpr const char* kValidChecks = "echo, find, worklist, store, retrieve, commit, access";

std::vector<Check> read_checks(const ConfigTable& t) {
  auto names = t.string_array("checks", {"echo"});
  if (names.empty()) t.fail("checks", std::string("must not be empty (valid: ") + kValidChecks + ")");
  std::vector<Check> out;
  for (const auto& n : names) {
    Check c;
    if (n == "echo") c = Check::echo;
    else if (n == "find") c = Check::find;
    else if (n == "worklist") c = Check::worklist;
    else if (n == "store") c = Check::store;
    else if (n == "retrieve") c = Check::retrieve;
    else if (n == "commit") c = Check::commit;
    else if (n == "access") c = Check::access;
    else t.fail("checks", "unknown check \"" + n + "\" (valid: " + kValidChecks + ")");
    if (std::find(out.begin(), out.end(), c) != out.end()) t.fail("checks", "duplicate check \"" + n + "\"");
    out.push_back(c);
  }
  return out;
}

bool dictionary_loaded() { return dcmDataDict.isDictionaryLoaded(); }

std::vector<QueryKey> read_keys(const ConfigTable& parent, std::vector<QueryKey> def) {
  auto kt = parent.table("keys");
  if (!kt) return def;
  if (!dictionary_loaded()) {
    parent.fail("keys", "cannot check attribute names: the DICOM data dictionary is not loaded (set DCMDICTPATH)");
  }
  std::vector<QueryKey> out;
  for (const auto& k : kt->keys()) {
    auto v = kt->optional_string(k);  // marks the key read; fails when not a string
    DcmTag tag;
    if (DcmTag::findTagFromName(k.c_str(), tag).bad()) {
      kt->fail(k, "unknown DICOM attribute \"" + k + "\" (not in the DCMTK data dictionary; use keywords such as StudyDate)");
    }
    if (tag.getEVR() == EVR_SQ) kt->fail(k, "sequence attributes cannot be matching keys");
    out.push_back({k, *v});
  }
  return out;
}

FindOptions read_find(const ConfigTable& t) {
  FindOptions f;
  f.keys = {{"StudyDate", "today"}};
  auto ft = t.table("find");
  if (!ft) return f;
  auto level = ft->string("level", "STUDY");
  if (level == "STUDY") f.level = FindOptions::Level::study;
  else if (level == "PATIENT") f.level = FindOptions::Level::patient;
  else if (level == "SERIES") f.level = FindOptions::Level::series;
  else ft->fail("level", "must be \"STUDY\", \"SERIES\" or \"PATIENT\"");
  auto def_model = f.level == FindOptions::Level::patient ? "patient_root" : "study_root";
  auto model = ft->string("model", def_model);
  if (model == "study_root") f.model = FindOptions::Model::study_root;
  else if (model == "patient_root") f.model = FindOptions::Model::patient_root;
  else ft->fail("model", "must be \"study_root\" or \"patient_root\"");
  if (f.level == FindOptions::Level::patient && f.model == FindOptions::Model::study_root) {
    ft->fail("model", "level \"PATIENT\" needs model \"patient_root\" (Study Root has no PATIENT level)");
  }
  f.keys = read_keys(*ft, {});
  if (auto g = ft->optional_string("group_by")) {
    if (*g == "ModalitiesInStudy") f.group_by = FindOptions::GroupBy::modalities_in_study;
    else if (*g == "Modality") f.group_by = FindOptions::GroupBy::modality;
    else ft->fail("group_by", "must be \"ModalitiesInStudy\" (level STUDY) or \"Modality\" (level SERIES)");
    if (f.group_by == FindOptions::GroupBy::modalities_in_study && f.level != FindOptions::Level::study) {
      ft->fail("group_by", "\"ModalitiesInStudy\" needs level \"STUDY\"");
    }
    if (f.group_by == FindOptions::GroupBy::modality && f.level != FindOptions::Level::series) {
      ft->fail("group_by", "\"Modality\" needs level \"SERIES\" (at STUDY level use \"ModalitiesInStudy\")");
    }
  }
  return f;
}

WorklistOptions read_worklist(const ConfigTable& t) {
  WorklistOptions w;
  w.keys = {{"ScheduledProcedureStepStartDate", "today"}};
  auto wt = t.table("worklist");
  if (!wt) return w;
  w.keys = read_keys(*wt, {});
  return w;
}

std::string read_file_key(const ConfigTable& t, std::string_view key, bool required) {
  auto v = required ? std::optional<std::string>(t.string(key)) : t.optional_string(key);
  if (!v) return {};
  if (v->empty()) t.fail(key, "must not be empty");
  if (::access(v->c_str(), R_OK) != 0) t.fail(key, "cannot read \"" + *v + "\"");
  return *v;
}

std::optional<TlsOptions> read_tls(const ConfigTable& t) {
  auto tt = t.table("tls");
  if (!tt) return std::nullopt;
  TlsOptions o;
  o.ca_file = read_file_key(*tt, "ca_file", true);
  o.cert_file = read_file_key(*tt, "cert_file", false);
  o.key_file = read_file_key(*tt, "key_file", false);
  if (o.cert_file.empty() != o.key_file.empty()) {
    tt->fail(o.cert_file.empty() ? "key_file" : "cert_file", "cert_file and key_file go together: set both or neither");
  }
  o.verify_peer = tt->boolean("verify_peer", true);
  return o;
}

// The agent's storage SCP: where it listens, under which AE title.
ScpOptions read_scp(const ConfigTable& t, const std::string& ae_key, const std::string& default_ae, bool required) {
  ScpOptions s;
  s.ae_title = read_ae(t, ae_key, default_ae);
  s.listen_address = t.string("listen_address", "0.0.0.0");
  in_addr a{};
  if (::inet_pton(AF_INET, s.listen_address.c_str(), &a) != 1) {
    t.fail("listen_address", "must be an IPv4 address of this host (0.0.0.0 = every interface)");
  }
  if (required && !t.has("listen_port")) {
    t.fail_table("missing required key \"listen_port\": the port of the agent's storage SCP, where the archive "
                 "connects back");
  }
  s.listen_port = static_cast<int>(t.integer("listen_port", 0, 1, 65535));
  return s;
}

RetrieveOptions read_retrieve(const ConfigTable& t, const std::string& calling_ae) {
  RetrieveOptions r;
  auto rt = t.table("retrieve");
  if (!rt) return r;
  auto method = rt->string("method", "get");
  if (method == "get") r.method = RetrieveOptions::Method::get;
  else if (method == "move") r.method = RetrieveOptions::Method::move;
  else rt->fail("method", "must be \"get\" or \"move\"");
  if (auto uid = rt->optional_string("study_uid")) {
    if (!canary::valid_uid(*uid)) rt->fail("study_uid", "must be a DICOM UID (digits and dots, at most 64 characters)");
    r.study_uid = *uid;
  }
  if (r.method == RetrieveOptions::Method::move) {
    r.scp = read_scp(*rt, "move_destination", calling_ae, true);
  } else {
    for (const char* k : {"move_destination", "listen_port", "listen_address"}) {
      if (rt->has(k)) rt->fail(k, "only with method = \"move\"");
    }
  }
  return r;
}

CommitOptions read_commit(const ConfigTable& t, const std::string& calling_ae) {
  CommitOptions c;
  auto ct = t.table("commit");
  if (!ct) return c;
  if (ct->has("listen_port")) {
    c.scp = read_scp(*ct, "ae_title", calling_ae, true);
  } else {
    for (const char* k : {"ae_title", "listen_address"}) {
      if (ct->has(k)) ct->fail(k, "only with listen_port (the agent's SCP for reports on a new association)");
    }
  }
  return c;
}

// The access canary's fixed prefix: shown in the PACS's audit log, so it
// names the agent; the rest of the 16 characters is random.
AccessOptions read_access(const ConfigTable& t) {
  AccessOptions a;
  auto at = t.table("access");
  if (!at) return a;
  a.calling_ae_prefix = at->string("calling_ae_prefix", a.calling_ae_prefix);
  if (a.calling_ae_prefix.size() > kMaxAccessPrefix) {
    at->fail("calling_ae_prefix", "must be at most " + std::to_string(kMaxAccessPrefix) +
                                      " characters (the rest of the 16-character AE title is random)");
  }
  for (unsigned char c : a.calling_ae_prefix) {
    if (c <= 0x20 || c > 0x7e || c == '\\') {
      at->fail("calling_ae_prefix", "must be printable ASCII without spaces or backslash");
    }
  }
  return a;
}

}  // namespace

void read_agent_keys(const ConfigTable& agent) { read_ae(agent, "calling_ae_title", std::string(kDefaultCallingAe)); }

std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const ConfigTable& agent) {
  DicomOptions o;
  o.host = table.string("host");
  validate_host(table, o.host);
  o.port = static_cast<int>(table.integer("port", 104, 1, 65535));
  o.called_ae_title = read_ae(table, "called_ae_title", std::nullopt);
  o.calling_ae_title =
      read_ae(table, "calling_ae_title", read_ae(agent, "calling_ae_title", std::string(kDefaultCallingAe)));
  o.checks = read_checks(table);
  auto has = [&](Check c) { return std::find(o.checks.begin(), o.checks.end(), c) != o.checks.end(); };
  if (table.has("find") && !has(Check::find)) table.fail("find", "settings for \"find\" but \"find\" is not in checks");
  if (table.has("worklist") && !has(Check::worklist)) {
    table.fail("worklist", "settings for \"worklist\" but \"worklist\" is not in checks");
  }
  for (const char* k : {"store", "retrieve", "commit", "access"}) {
    const std::string n = k;
    Check c = n == "store" ? Check::store : n == "retrieve" ? Check::retrieve : n == "commit" ? Check::commit : Check::access;
    if (table.has(k) && !has(c)) {
      table.fail(k, std::string("settings for \"") + k + "\" but \"" + k + "\" is not in checks");
    }
  }
  o.find = read_find(table);
  o.worklist = read_worklist(table);
  o.tls = read_tls(table);
  if (has(Check::store)) {
    auto st = table.table("store");
    if (!st) {
      table.fail("checks",
                 "\"store\" writes a synthetic canary object into the archive and needs a [dicom.store] table with "
                 "uid_root and cleanup");
    }
    o.store = StoreOptions{canary::read_settings(*st)};
  }
  o.retrieve = read_retrieve(table, o.calling_ae_title);
  o.commit = read_commit(table, o.calling_ae_title);
  o.access = read_access(table);
  if (has(Check::retrieve) && !o.retrieve.study_uid && !has(Check::store)) {
    table.fail("checks",
               "\"retrieve\" fetches the canary that the store check's settings describe: add \"store\" to checks "
               "(with [dicom.store]), or set retrieve.study_uid to a fixed study");
  }
  if (has(Check::commit) && !has(Check::store)) {
    table.fail("checks",
               "\"commit\" asks for storage commitment of a canary that the store check's settings describe: add "
               "\"store\" to checks (with [dicom.store])");
  }
  if (o.tls && ((has(Check::retrieve) && o.retrieve.method == RetrieveOptions::Method::move) ||
                (has(Check::commit) && o.commit.scp.listen_port != 0))) {
    table.fail("tls", "the agent's storage SCP (retrieve method \"move\", commit.listen_port) does not speak "
                      "DICOM-TLS; the archive would have to connect back in plain DICOM");
  }

  // An IPv4 address is never resolved, so it cannot fail with dns_failure:
  // no zero counter for it (one series less per check).
  in_addr literal{};
  const bool address = ::inet_pton(AF_INET, o.host.c_str(), &literal) == 1;
  std::vector<ProbeSpec> specs;
  for (Check c : o.checks) {
    std::vector<Reason> reasons = reasons_for(o, c);
    if (address) std::erase(reasons, Reason::dns_failure);
    specs.push_back(make_spec(kind(), to_string(c), common, table, std::move(reasons),
                              [o, c] { return std::make_unique<DicomProbe>(o, c); }));
  }
  return specs;
}

namespace {

// Every reason an image check (or the access canary) can produce with any settings.
std::vector<Reason> all_image_reasons(Check c) {
  DicomOptions o;
  o.tls = TlsOptions{};
  o.retrieve.method = RetrieveOptions::Method::move;
  o.commit.scp.listen_port = 1;
  return reasons_for(o, c);
}

}  // namespace

const Kind& kind() {
  static const Kind k{
      .name = "dicom",
      .summary = "DICOM application entities: C-ECHO, C-FIND canary, Modality Worklist, over TCP or DICOM-TLS; "
                 "opt-in image round trip (C-STORE canary, C-GET/C-MOVE, storage commitment); access-control canary",
      .checks = {{"echo", "dicom_echo", reasons_for(true)},
                 {"find", "dicom_find", reasons_for(true)},
                 {"worklist", "dicom_worklist", reasons_for(true)},
                 {"store", "dicom_store", all_image_reasons(Check::store)},
                 {"retrieve", "dicom_retrieve", all_image_reasons(Check::retrieve)},
                 {"commit", "dicom_commit", all_image_reasons(Check::commit)},
                 {"access", "dicom_access", all_image_reasons(Check::access)}},
      .parse = &parse_target,
      .agent_keys = &read_agent_keys,
      .init = &global_init,
      .shutdown = &global_shutdown,
      .versions = [] { return std::vector<std::string>{dcmtk::version_line()}; },
  };
  return k;
}

}  // namespace pacs::dicom

namespace pacs::probe_kinds {
const Kind& dicom() { return dicom::kind(); }
}  // namespace pacs::probe_kinds
