// C-FIND matches counted per modality (`group_by` in [dicom.find]): the
// bounded set of group label values, the date/time arithmetic for "newest
// study", and the per-run tally. Pure code, unit-tested without a peer.
//
// PHI rule: a tally is fed only the three values it needs from a response
// (the modality value(s), StudyDate, StudyTime) — never a dataset. Group
// labels come from the closed set of modality codes below, "other" or
// "none": never a value a peer made up.
#pragma once

#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "probes/probe.h"

namespace pacs::dicom {

// Help texts of the find check's per-run gauges (one text per metric name,
// grouped or not).
inline constexpr const char* kFindMatchesHelp = "C-FIND pending responses (matches) in the last run.";
inline constexpr const char* kFindNewestAgeHelp =
    "Seconds since the newest matching study (StudyDate/StudyTime, agent local time) in the last run.";

// Label value for one Modality code as received: the code itself when it
// is a defined term of PS3.3 C.7.3.1.1.1 (current or retired; surrounding
// spaces ignored, case-sensitive as CS values are), "none" when empty,
// "other" for anything else.
std::string modality_group(std::string_view value);
// True when `code` is one of the defined terms (current or retired).
bool is_modality_code(std::string_view code);
// The defined terms, sorted (for docs and tests).
const std::set<std::string, std::less<>>& modality_codes();

// The label values of one response's modality attribute (ModalitiesInStudy
// is multi-valued: "MR\PT"). Each value becomes its group, duplicates
// once; no value at all gives {"none"}.
std::set<std::string> groups_of(const std::vector<std::string>& values);

// StudyDate (DA, YYYYMMDD) + StudyTime (TM, HH[MM[SS[.F{1,6}]]], also the
// ACR-NEMA "HH:MM:SS" form) as a Unix time, reading the values as the
// agent's local time (the PACS and the agent share a site). An empty or
// malformed time counts as the start of the day (a study never looks
// newer than it is); a malformed date gives nullopt.
std::optional<double> study_timestamp(std::string_view date, std::string_view time);

// Counts of one C-FIND run by group, and the newest study per group.
class FindTally {
 public:
  // One pending response: its modality value(s) and study date/time.
  void add(const std::vector<std::string>& modality_values, std::string_view study_date,
           std::string_view study_time);
  int responses() const { return responses_; }
  const std::map<std::string, int>& counts() const { return counts_; }
  // Unix time of the newest study per group (groups whose responses had no
  // readable StudyDate are absent).
  const std::map<std::string, double>& newest() const { return newest_; }

 private:
  int responses_ = 0;
  std::map<std::string, int> counts_;
  std::map<std::string, double> newest_;
};

// The samples of a grouped find: pacs_dicom_find_matches{group} for every
// group in `seen` (0 when the run had none; `seen` gains this run's groups)
// and pacs_dicom_find_newest_age_seconds{group} for the groups of this run
// with a known newest study (now - newest, at least 0).
void add_group_samples(ProbeResult& r, const FindTally& tally, std::set<std::string>& seen, double now);

}  // namespace pacs::dicom
