// The DICOM probe kind: settings of one [[dicom]] target, its checks
// (C-ECHO, C-FIND canary, Modality Worklist C-FIND, the access-control
// canary; and, opt-in, the image
// round trip: C-STORE of a synthetic canary + find back, C-GET/C-MOVE
// retrieve, storage commitment) and the pure helpers the unit tests exercise
// (reason mapping, "today" expansion, reject texts).
//
// PHI rule: a check counts C-FIND responses; it never logs or exports their
// identifiers (the store check compares one returned SOP Instance UID with
// the canary's, nothing else). Messages carry counts, codes, timings and
// configured names only.
#pragma once

#include <deque>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "probes/dicom/dicom.h"
#include "probes/lib/canary/canary.h"

namespace pacs::dicom {

// DICOM AE titles (PS3.5 6.2): 1..16 characters of the default repertoire,
// no backslash, not only spaces. Our calling AE and peers' AEs.
bool valid_ae_title(const std::string& s);

enum class Check { echo, find, worklist, store, retrieve, commit, access };
std::string_view to_string(Check c) noexcept;          // "echo", "find", "worklist", "store", ...
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

// The agent's own storage SCP (C-MOVE destination, storage commitment
// reports on a new association): bound for one run only.
struct ScpOptions {
  std::string ae_title;                   // the agent's AE title as the PACS knows it
  std::string listen_address = "0.0.0.0";  // IPv4 address to bind
  int listen_port = 0;                    // 0 = no SCP
};

struct StoreOptions {
  canary::Settings canary;
};

struct RetrieveOptions {
  enum class Method { get, move } method = Method::get;
  // A fixed study to fetch (a QC study) instead of a fresh canary.
  std::optional<std::string> study_uid;
  ScpOptions scp;  // move: where the PACS sends the instances
};

struct CommitOptions {
  ScpOptions scp;  // optional: listen for the report on a new association
};

// The access-control canary: a C-ECHO under a calling AE title the peer
// cannot know, fresh every run.
struct AccessOptions {
  // Fixed start of the random title, so the PACS's audit log shows the
  // agent's canary rather than an unexplained stranger. At most
  // kMaxAccessPrefix characters: the rest (at least 6) is random.
  std::string calling_ae_prefix = "PACSAGENT-";
};
inline constexpr size_t kMaxAccessPrefix = 10;

// `prefix` followed by random characters (A-Z, 0-9) up to 16 characters;
// never equal to `avoid` (the agent's own calling AE title).
std::string random_ae_title(const std::string& prefix, const std::string& avoid);

struct DicomOptions {
  std::string host;  // IP literal or name (resolved per run, with the deadline)
  int port = 104;
  std::string called_ae_title;
  std::string calling_ae_title;
  std::vector<Check> checks{Check::echo};
  FindOptions find;
  WorklistOptions worklist;
  std::optional<TlsOptions> tls;
  std::optional<StoreOptions> store;  // set when "store" is in checks
  RetrieveOptions retrieve;
  CommitOptions commit;
  AccessOptions access;
};

// One check against one target: fresh associations per run.
// Thread-safety: run() is called by one thread at a time per instance;
// separate instances may run concurrently (they share no mutable state; the
// agent's SCP ports are shared through a process-wide lock, storage_scp.h).
class DicomProbe : public Probe {
 public:
  DicomProbe(DicomOptions opts, Check check) : opts_(std::move(opts)), check_(check) {}
  ProbeResult run(const ProbeContext& ctx) override;
  const DicomOptions& options() const { return opts_; }
  Check check() const { return check_; }
  // Canary studies whose cleanup failed, retried by the next runs of this
  // instance (bounded; a restart forgets them and pacs_dicom_canary_studies
  // shows what is left).
  size_t pending_cleanups() const { return pending_.size(); }

 private:
  ProbeResult run_association_check(const ProbeContext& ctx);
  DicomOptions opts_;
  Check check_;
  std::deque<std::string> pending_;
  // find with group_by: every group this instance has seen, exported (0
  // when it has no match) until the instance is rebuilt (restart, or a
  // reload that changes the target's settings).
  std::set<std::string> seen_groups_;
};

// The reasons a check can produce (their failure counters start at 0);
// tls_failure only when the target uses DICOM-TLS. The image checks add
// their own (stored_not_found, content_mismatch, inbound_timeout,
// commitment_failed, io_error for an SCP port that cannot be bound).
std::vector<Reason> reasons_for(bool tls);
std::vector<Reason> reasons_for(const DicomOptions& o, Check c);

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
