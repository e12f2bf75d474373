// The dicomweb probe kind: the DICOMweb API that web viewers use, per base
// URL. Three checks, each its own probe (label dicomweb_<check>):
//   qido  QIDO-RS search for studies, matches counted
//   wado  WADO-RS metadata of one study (found by QIDO, or a fixed QC study)
//   stow  STOW-RS of the synthetic canary object, found back, cleaned up
// Nothing a server returns (UIDs, names, IDs) is exported, logged or put in
// a message or transcript: responses are counted and measured only.
// The probe classes are public for tests; the agent sees only the Kind.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "probes/kind.h"
#include "probes/lib/canary/canary.h"
#include "probes/lib/http/http_client.h"

namespace pacs::dicomweb {

const Kind& kind();
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const ConfigTable& agent);

// A QIDO-RS matching key: DICOM keyword (or tag as 8 hex digits) and value;
// the value "today" is the agent's local date (YYYYMMDD) at every run.
struct QueryKey {
  std::string key, value;
};

struct Target {
  std::string url;  // base URL without trailing slash, e.g. https://pacs/dicom-web
  http::Settings http;
};

// "today" -> YYYYMMDD (local time), any other value as is.
std::string expand_value(const std::string& value);
// {url}/studies?k=v&... (values percent-encoded, "today" expanded).
std::string qido_url(const std::string& base, const std::vector<QueryKey>& keys, int limit = 0);

class QidoProbe : public Probe {
 public:
  QidoProbe(Target t, std::vector<QueryKey> keys) : t_(std::move(t)), keys_(std::move(keys)) {}
  ProbeResult run(const ProbeContext& ctx) override;

 private:
  Target t_;
  std::vector<QueryKey> keys_;
};

struct WadoOptions {
  std::string study_uid;        // a fixed QC study; empty = the first study QIDO finds with `keys`
  std::vector<QueryKey> keys;   // QIDO keys that pick the study (limit=1); default none
};

class WadoProbe : public Probe {
 public:
  WadoProbe(Target t, WadoOptions o) : t_(std::move(t)), o_(std::move(o)) {}
  ProbeResult run(const ProbeContext& ctx) override;

 private:
  Target t_;
  WadoOptions o_;
};

// STOW-RS of the shared synthetic canary (probes/lib/canary): POST it, check
// the answer lists it as stored and not failed, find it back with QIDO-RS
// (polling until the deadline leaves time for the cleanup), delete it as the
// canary's cleanup says, and count the test patient's studies left over.
class StowProbe : public Probe {
 public:
  StowProbe(Target t, canary::Settings c) : t_(std::move(t)), c_(std::move(c)) {}
  ProbeResult run(const ProbeContext& ctx) override;

 private:
  Target t_;
  canary::Settings c_;
};

// The multipart/related body of one STOW-RS request with one Part-10 object,
// and the boundary it uses (one that does not occur in the object).
struct Multipart {
  std::string content_type;  // multipart/related; type="application/dicom"; boundary=...
  std::string body;
};
Multipart stow_body(const std::string& part10);

std::vector<Reason> reasons(std::string_view check, bool https);

}  // namespace pacs::dicomweb
