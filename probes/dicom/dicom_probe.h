// The DICOM probe kind: settings of one [[dicom]] target, the three checks
// (C-ECHO, C-FIND canary, Modality Worklist C-FIND) and the pure helpers the
// unit tests exercise (reason mapping, "today" expansion, reject texts).
//
// PHI rule: a check counts C-FIND responses; it never reads, logs or exports
// their identifiers. Messages carry counts, codes, timings and configured
// names only.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "probes/dicom/dicom.h"

namespace pacs::dicom {

// DICOM AE titles (PS3.5 6.2): 1..16 characters of the default repertoire,
// no backslash, not only spaces. Our calling AE and peers' AEs.
bool valid_ae_title(const std::string& s);

enum class Check { echo, find, worklist };
std::string_view to_string(Check c) noexcept;          // "echo", "find", "worklist"
std::string_view probe_name(Check c) noexcept;         // "dicom_echo", ...

// A matching key of a C-FIND identifier: attribute keyword as configured
// (validated against the data dictionary) and its value; "today" is
// replaced at run time by the local date (YYYYMMDD).
struct QueryKey {
  std::string keyword;
  std::string value;
};

struct FindOptions {
  enum class Level { patient, study, series } level = Level::study;
  enum class Model { study_root, patient_root } model = Model::study_root;
  std::vector<QueryKey> keys;
  // Count matches per modality (find_groups.h): ModalitiesInStudy at STUDY
  // level, Modality at SERIES level; none = one ungrouped count.
  enum class GroupBy { none, modalities_in_study, modality } group_by = GroupBy::none;
};

struct WorklistOptions {
  std::vector<QueryKey> keys;
};

struct TlsOptions {
  std::string ca_file;
  std::string cert_file;  // empty: no client certificate
  std::string key_file;
  bool verify_peer = true;
};

struct DicomOptions {
  std::string host;  // IP literal or name (resolved per run, with the deadline)
  int port = 104;
  std::string called_ae_title;
  std::string calling_ae_title;
  std::vector<Check> checks{Check::echo};
  FindOptions find;
  WorklistOptions worklist;
  std::optional<TlsOptions> tls;
};

// One check against one target: a fresh association per run.
// Thread-safety: run() is called by one thread at a time per instance;
// separate instances may run concurrently (they share no mutable state).
class DicomProbe : public Probe {
 public:
  DicomProbe(DicomOptions opts, Check check) : opts_(std::move(opts)), check_(check) {}
  ProbeResult run(const ProbeContext& ctx) override;
  const DicomOptions& options() const { return opts_; }
  Check check() const { return check_; }

 private:
  DicomOptions opts_;
  Check check_;
  // find with group_by: every group this instance has seen, exported (0
  // when it has no match) until the instance is rebuilt (restart, or a
  // reload that changes the target's settings).
  std::set<std::string> seen_groups_;
};

// The reasons a check can produce (their failure counters start at 0);
// tls_failure only when the target uses DICOM-TLS.
std::vector<Reason> reasons_for(bool tls);

// Local date as DICOM DA (YYYYMMDD).
std::string today_dicom_date();
// `value` with "today" replaced by `today` (exact, case-insensitive match).
std::string expand_value(const std::string& value, const std::string& today);

// PS3.8 Table 9-21 texts. `dcmtk_reason` is DCMTK's encoding source<<8|reason.
std::string_view reject_result_text(int result);
std::string_view reject_source_text(int source);
std::string_view reject_reason_text(int dcmtk_reason);
// "association rejected: result=1 (permanent) source=1 (service user)
//  reason=0x0107 (called AE title not recognized)"
std::string reject_message(int result, int source, int dcmtk_reason);

// Where in the association a condition arose; decides between the timeout
// reasons when the deadline fired.
enum class Phase { resolve, connect, associate, dimse, release };
std::string_view to_string(Phase p) noexcept;

// Maps a DCMTK condition (module, code, text) met in `phase` to a Reason.
// `deadline_hit` is true when our watchdog cut the connection (or the
// deadline had passed), which turns any I/O error into the phase's timeout.
Reason classify_condition(unsigned short module, unsigned short code, std::string_view text, Phase phase,
                          bool deadline_hit);

}  // namespace pacs::dicom
