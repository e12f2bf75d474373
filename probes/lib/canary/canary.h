// The canary: a tiny, clearly marked synthetic DICOM object that a probe
// writes into an archive to prove that images still get in and come back out
// (DICOM C-STORE, DICOMweb STOW-RS), then deletes again.
//
// What every canary is (README.md in this folder explains why):
//   - Secondary Capture Image Storage, 16x16 8-bit MONOCHROME2 pixels;
//   - the configured test patient (default PatientID "PACS-AGENT-CANARY",
//     PatientName "ZZ_PACS_AGENT^CANARY"), never anyone else;
//   - StudyDescription naming the agent, SeriesDescription naming the channel;
//   - fresh Study, Series and SOP Instance UIDs under the site's uid_root on
//     every call: an archive silently drops a second copy of a known UID, so
//     reused UIDs would test nothing.
//
// Config keys (read_settings): uid_root (required), patient_id,
// patient_name, cleanup = { type = "orthanc" | "dcm4chee" | "none", url, ... }.
// Cleanup deletes exactly the study whose StudyInstanceUID the probe
// generated (Orthanc: /tools/lookup on that UID; dcm4chee: reject, then
// delete that study) — never "everything of the test patient".
//
// PHI rule: the canary carries no patient data. Its UIDs are generated here,
// yet they never go into messages, logs or transcripts either (one rule for
// every UID). compare() names differing attributes, never values.
//
// Thread-safety: every function is safe to call from any number of threads;
// an Object is used by one thread at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdatset.h"

#include "probes/config_table.h"
#include "probes/lib/http/http_client.h"
#include "probes/probe.h"

namespace pacs::canary {

inline constexpr std::string_view kDefaultPatientId = "PACS-AGENT-CANARY";
inline constexpr std::string_view kDefaultPatientName = "ZZ_PACS_AGENT^CANARY";
inline constexpr std::string_view kStudyDescription = "pacs-agent canary: synthetic test object, safe to delete";
inline constexpr std::string_view kDefaultRejectCode = "113039^DCM";  // Data Retention Policy Expired
// The agent appends at most this many characters to uid_root (UIDs are <= 64).
inline constexpr size_t kUidSuffixMax = 26;
inline constexpr size_t kUidRootMax = 64 - kUidSuffixMax;

struct Cleanup {
  enum class Type { none, orthanc, dcm4chee } type = Type::none;
  // orthanc: the REST API root (http://host:8042); dcm4chee: the archive AE's
  // REST base (http://host:8080/dcm4chee-arc/aets/DCM4CHEE/rs).
  std::string url;
  http::Settings http;
  std::string reject_code{kDefaultRejectCode};  // dcm4chee: CodeValue^CodingSchemeDesignator
};

struct Settings {
  std::string uid_root;
  std::string patient_id{kDefaultPatientId};
  std::string patient_name{kDefaultPatientName};
  Cleanup cleanup;
};

std::string_view to_string(Cleanup::Type t) noexcept;  // "none", "orthanc", "dcm4chee"

// nullopt when `root` is a valid UID root for canaries: numeric components
// separated by dots, no empty component, no leading zero (except "0"), first
// component 0, 1 or 2, at most kUidRootMax characters. Else why not.
std::optional<std::string> uid_root_problem(std::string_view root);
// A DICOM UID: numeric components, no leading zeros, 1..64 characters.
bool valid_uid(std::string_view uid);

// Reads uid_root, patient_id, patient_name and cleanup from `t` (the table
// of the check that writes canaries, e.g. [dicom.store]). Other keys of `t`
// are the caller's. Throws ConfigError naming file:line: key.path.
Settings read_settings(const ConfigTable& t);

struct Uids {
  std::string study, series, instance;
};
// Three fresh UIDs under `root` (time in microseconds + 48 random bits),
// each at most 64 characters when `root` passed uid_root_problem().
Uids fresh_uids(std::string_view root);

// One canary instance, built in memory.
class Object {
 public:
  Object(Object&&) noexcept;
  Object& operator=(Object&&) noexcept;
  ~Object();

  const Uids& uids() const { return uids_; }
  const std::string& sop_class_uid() const { return sop_class_uid_; }
  const std::string& patient_id() const { return patient_id_; }
  // The dataset (no meta header), for a C-STORE from memory.
  DcmDataset& dataset() { return *dataset_; }
  const std::vector<unsigned char>& pixels() const { return pixels_; }
  // DICOM Part-10 file bytes (meta header + Explicit VR Little Endian), for
  // STOW-RS or an upload. Throws std::runtime_error when DCMTK cannot encode.
  std::string part10() const;
  // Empty when `received` is this object as sent (UIDs, SOP class, patient
  // ID, pixel data); else the keywords of what differs, e.g. "PixelData".
  // Never values.
  std::vector<std::string> differences(DcmItem& received) const;

 private:
  friend Object make_object(const Settings& s, std::string_view series_description);
  Object() = default;
  Uids uids_;
  std::string sop_class_uid_;
  std::string patient_id_;
  std::vector<unsigned char> pixels_;
  std::unique_ptr<DcmDataset> dataset_;
};

// A fresh canary for `s` (new UIDs every call). `series_description` names
// the channel that writes it, e.g. "pacs-agent C-STORE canary".
Object make_object(const Settings& s, std::string_view series_description);

// Deleting one canary study again.
struct CleanupOutcome {
  enum class Status {
    deleted,    // the archive deleted it
    not_found,  // the archive does not know the study (nothing to delete)
    failed,     // the request failed; `reason` says how; worth retrying
    disabled,   // cleanup type "none"
  } status = Status::failed;
  Reason reason = Reason::none;  // failed: the transport/HTTP reason
  std::string message;           // one line; no UIDs, no credentials
};
std::string_view to_string(CleanupOutcome::Status s) noexcept;

// Deletes the study `study_uid` (a UID this agent generated) the way `c`
// says, within ctx.deadline. Writes "cleanup" transcript steps (paths with
// the UID replaced by "{study}").
CleanupOutcome cleanup_study(const Cleanup& c, const std::string& study_uid, const ProbeContext& ctx);

}  // namespace pacs::canary
