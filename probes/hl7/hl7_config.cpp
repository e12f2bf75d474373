// [[hl7]] table -> one ProbeSpec (probe label "hl7"), and the kind's
// descriptor. Every default lives in Options (hl7.h); README.md lists them.
#include <cctype>
#include <regex>

#include "probes/hl7/hl7.h"

namespace pacs::hl7 {

namespace {

// A value that goes into one MSH field: no HL7 delimiter, no control byte.
std::string read_field(const ConfigTable& t, std::string_view key, const std::string& def, bool required,
                       bool components = false) {
  std::string v = required ? t.string(key) : t.string(key, def);
  if (required && v.empty()) t.fail(key, "must not be empty");
  if (v.size() > 180) t.fail(key, "must be at most 180 characters");
  for (unsigned char c : v) {
    if (c < 0x20 || c == 0x7f) t.fail(key, "must not contain control characters");
    if (c == '|' || c == '~' || c == '\\' || c == '&' || (c == '^' && !components)) {
      t.fail(key, components ? "must not contain the HL7 delimiters | ~ \\ &"
                             : "must not contain the HL7 delimiters | ^ ~ \\ &");
    }
  }
  return v;
}

void validate_host(const ConfigTable& t, const std::string& host) {
  if (host.empty()) t.fail("host", "must not be empty");
  for (unsigned char c : host) {
    if (!std::isalnum(c) && c != '.' && c != '-' && c != '_' && c != ':') {
      t.fail("host", "must be an IP address or a host name");
    }
  }
}

std::vector<std::string> read_segments(const ConfigTable& t) {
  if (!t.has("segments")) return {};
  auto segs = t.string_array("segments", {});
  if (segs.empty()) t.fail("segments", "must list at least one segment (omit it for the default body)");
  static const std::regex re(R"(^[A-Z][A-Z0-9]{2}\|.*$)");
  for (const auto& s : segs) {
    for (unsigned char c : s) {
      if (c < 0x20 || c == 0x7f) t.fail("segments", "a segment must not contain control characters (CR separates segments by itself)");
    }
    if (!std::regex_match(s, re)) t.fail("segments", "each segment starts with its three-character ID and '|', e.g. \"PID|1||...\"");
    if (s.rfind("MSH|", 0) == 0) t.fail("segments", "MSH is built by the agent (from the keys); list only the segments after it");
  }
  return segs;
}

}  // namespace

std::vector<ProbeSpec> parse_target(const ConfigTable& t, const TargetCommon& common, const ConfigTable&) {
  Options o;
  o.host = t.string("host");
  validate_host(t, o.host);
  o.port = static_cast<int>(t.integer("port", o.port, 1, 65535));
  o.sending_application = read_field(t, "sending_application", o.sending_application, false, true);
  if (o.sending_application.empty()) t.fail("sending_application", "must not be empty");
  o.sending_facility = read_field(t, "sending_facility", "", false, true);
  o.receiving_application = read_field(t, "receiving_application", "", false, true);
  o.receiving_facility = read_field(t, "receiving_facility", "", false, true);
  o.message_type = t.string("message_type");
  static const std::regex type_re(R"(^[A-Z0-9]{3}\^[A-Z0-9]{3}(\^[A-Z0-9_]{3,7})?$)");
  if (!std::regex_match(o.message_type, type_re)) {
    t.fail("message_type", "must be MSH-9 as message code^trigger event[^structure], e.g. \"ADT^A08\"");
  }
  o.processing_id = t.string("processing_id", o.processing_id);
  if (o.processing_id != "P" && o.processing_id != "T" && o.processing_id != "D") {
    t.fail("processing_id", "must be \"P\" (production), \"T\" (training/test) or \"D\" (debugging)");
  }
  o.version = t.string("version", o.version);
  static const std::regex version_re(R"(^2\.[1-9](\.[0-9])?$)");
  if (!std::regex_match(o.version, version_re)) t.fail("version", "must be an HL7 v2 version such as \"2.3\" or \"2.5.1\"");
  o.patient_id = read_field(t, "patient_id", o.patient_id, false);
  if (o.patient_id.empty()) t.fail("patient_id", "must not be empty");
  o.patient_name = read_field(t, "patient_name", o.patient_name, false, true);
  if (o.patient_name.empty()) t.fail("patient_name", "must not be empty");
  o.segments = read_segments(t);
  o.tls = http::read_tls(t);
  const bool tls = o.tls.has_value();
  std::vector<ProbeSpec> specs;
  specs.push_back(make_spec(kind(), "hl7", common, t, reasons(tls), [o] { return std::make_unique<Hl7Probe>(o); }));
  return specs;
}

const Kind& kind() {
  static const Kind k{
      .name = "hl7",
      .summary = "HL7 v2 interfaces over MLLP (RIS, broker, EMR): one test message, its acknowledgement checked",
      .checks = {{"hl7", "hl7", reasons(true)}},
      .parse = &parse_target,
      .init = [](Logger&) { http::global_init(); },
      .shutdown = [] { http::global_shutdown(); },
      .versions = [] { return std::vector<std::string>{http::curl_version_line()}; },
  };
  return k;
}

}  // namespace pacs::hl7

namespace pacs::probe_kinds {
const Kind& hl7() { return hl7::kind(); }
}  // namespace pacs::probe_kinds
