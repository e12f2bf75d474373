// Config keys every canary-writing check shares: uid_root, patient_id,
// patient_name, cleanup.
#include <regex>

#include "probes/lib/canary/canary.h"

namespace pacs::canary {

namespace {

// LO / PN values of the test patient: printable ASCII (no backslash, the
// DICOM value separator), 1..64 characters.
std::string read_patient_value(const ConfigTable& t, std::string_view key, std::string_view def) {
  std::string v = t.string(key, def);
  if (v.empty() || v.size() > 64) t.fail(key, "must be 1..64 characters");
  for (unsigned char c : v) {
    if (c < 0x20 || c > 0x7e || c == '\\') t.fail(key, "must be printable ASCII without backslash");
  }
  if (v.find_first_not_of(' ') == std::string::npos) t.fail(key, "must not be blank");
  return v;
}

Cleanup read_cleanup(const ConfigTable& parent) {
  auto ct = parent.table("cleanup");
  if (!ct) {
    parent.fail_table(
        "cleanup is required: cleanup = { type = \"orthanc\" | \"dcm4chee\" | \"none\", ... } (what deletes the "
        "canary studies again)");
  }
  Cleanup c;
  std::string type = ct->string("type");
  if (type == "none") {
    c.type = Cleanup::Type::none;
    return c;  // any other key is reported as unknown
  }
  if (type == "orthanc") {
    c.type = Cleanup::Type::orthanc;
    c.url = http::read_url(*ct, "url");
  } else if (type == "dcm4chee") {
    c.type = Cleanup::Type::dcm4chee;
    c.url = http::read_url(*ct, "url");
    std::string path = c.url;
    while (!path.empty() && path.back() == '/') path.pop_back();
    if (path.size() < 3 || path.compare(path.size() - 3, 3, "/rs") != 0) {
      ct->fail("url",
               "must be the archive AE's REST base ending in /rs, e.g. "
               "\"http://pacs:8080/dcm4chee-arc/aets/DCM4CHEE/rs\"");
    }
    c.reject_code = ct->string("reject_code", kDefaultRejectCode);
    static const std::regex code(R"(^[A-Za-z0-9._-]{1,16}\^[A-Za-z0-9._-]{1,16}$)");
    if (!std::regex_match(c.reject_code, code)) {
      ct->fail("reject_code", "must be CodeValue^CodingSchemeDesignator, e.g. \"113039^DCM\"");
    }
  } else {
    ct->fail("type", "must be \"orthanc\", \"dcm4chee\" or \"none\"");
  }
  while (c.url.size() > 1 && c.url.back() == '/') c.url.pop_back();
  c.http = http::read_settings(*ct, true);
  return c;
}

}  // namespace

Settings read_settings(const ConfigTable& t) {
  Settings s;
  if (!t.has("uid_root")) {
    t.fail_table(
        "missing required key \"uid_root\": the site's DICOM UID root under which the agent generates the "
        "canary's UIDs (e.g. \"1.2.826.0.1.3680043.10.999\")");
  }
  s.uid_root = t.string("uid_root");
  if (auto problem = uid_root_problem(s.uid_root)) t.fail("uid_root", *problem);
  s.patient_id = read_patient_value(t, "patient_id", kDefaultPatientId);
  s.patient_name = read_patient_value(t, "patient_name", kDefaultPatientName);
  s.cleanup = read_cleanup(t);
  return s;
}

}  // namespace pacs::canary
