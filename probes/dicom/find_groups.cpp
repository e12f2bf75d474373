#include "probes/dicom/find_groups.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace pacs::dicom {

const std::set<std::string, std::less<>>& modality_codes() {
  // PS3.3 C.7.3.1.1.1 "Modality": the defined terms, then the retired ones
  // (old devices and migrated archives still carry them).
  static const std::set<std::string, std::less<>> codes = {
      "ANN",   "AR",     "ASMT",       "AU",       "BDUS",   "BI",       "BMD",      "CFM",     "CR",
      "CT",    "CTPROTOCOL",           "DMS",      "DG",     "DOC",      "DX",       "ECG",     "EEG",
      "EMG",   "EOG",    "EPS",        "ES",       "FID",    "GM",       "HC",       "HD",      "IO",
      "IOL",   "IVOCT",  "IVUS",       "KER",      "KO",     "LEN",      "LS",       "MG",      "MR",
      "M3D",   "NM",     "OAM",        "OCT",      "OP",     "OPM",      "OPT",      "OPTBSV",  "OPTENF",
      "OPV",   "OSS",    "OT",         "PA",       "PLAN",   "POS",      "PR",       "PT",      "PX",
      "REG",   "RESP",   "RF",         "RG",       "RTDOSE", "RTIMAGE",  "RTINTENT", "RTPLAN",  "RTRAD",
      "RTRECORD",        "RTSEGANN",   "RTSTRUCT", "RWV",    "SEG",      "SM",       "SMR",     "SR",
      "SRF",   "STAIN",  "TEXTUREMAP", "TG",       "US",     "VA",       "XA",       "XAPROTOCOL", "XC",
      // retired
      "AS",    "CD",     "CF",         "CP",       "CS",     "DD",       "DF",       "DM",      "DS",
      "EC",    "FA",     "FS",         "LP",       "MA",     "MS",       "OPR",      "ST",      "VF",
  };
  return codes;
}

bool is_modality_code(std::string_view code) { return modality_codes().count(code) > 0; }

namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\0')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.remove_suffix(1);
  return s;
}

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int number(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}
}  // namespace

std::string modality_group(std::string_view value) {
  auto v = trim(value);
  if (v.empty()) return "none";
  if (is_modality_code(v)) return std::string(v);
  return "other";
}

std::set<std::string> groups_of(const std::vector<std::string>& values) {
  std::set<std::string> out;
  for (const auto& v : values) {
    if (trim(v).empty()) continue;  // "CT\\" carries an empty second value: not a modality
    out.insert(modality_group(v));
  }
  if (out.empty()) out.insert("none");
  return out;
}

std::optional<double> study_timestamp(std::string_view date, std::string_view time) {
  date = trim(date);
  if (date.size() != 8 || !all_digits(date)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = number(date.substr(0, 4)) - 1900;
  tm.tm_mon = number(date.substr(4, 2)) - 1;
  tm.tm_mday = number(date.substr(6, 2));
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31) return std::nullopt;

  // TM: HH, HHMM, HHMMSS, HHMMSS.F..., or the ACR-NEMA HH:MM:SS.
  std::string t;
  for (char c : trim(time))
    if (c != ':') t += c;
  auto dot = t.find('.');
  std::string whole = t.substr(0, dot);
  double frac = 0;
  bool ok = !whole.empty() && whole.size() <= 6 && whole.size() % 2 == 0 && all_digits(whole);
  if (ok && dot != std::string::npos) {
    std::string f = t.substr(dot + 1);
    ok = whole.size() == 6 && !f.empty() && f.size() <= 6 && all_digits(f);
    if (ok) frac = number(f) / std::pow(10.0, static_cast<double>(f.size()));
  }
  if (ok) {
    int hh = number(whole.substr(0, 2));
    int mm = whole.size() >= 4 ? number(whole.substr(2, 2)) : 0;
    int ss = whole.size() >= 6 ? number(whole.substr(4, 2)) : 0;
    ok = hh <= 23 && mm <= 59 && ss <= 60;
    if (ok) {
      tm.tm_hour = hh;
      tm.tm_min = mm;
      tm.tm_sec = ss;
    }
  }
  if (!ok) frac = 0;  // no usable time: the start of the day
  tm.tm_isdst = -1;   // let the local zone decide (studies on either side of a DST change)
  std::time_t t0 = std::mktime(&tm);
  if (t0 == static_cast<std::time_t>(-1)) return std::nullopt;
  return static_cast<double>(t0) + frac;
}

void FindTally::add(const std::vector<std::string>& modality_values, std::string_view study_date,
                    std::string_view study_time) {
  ++responses_;
  auto when = study_timestamp(study_date, study_time);
  for (const auto& g : groups_of(modality_values)) {
    ++counts_[g];
    if (when) {
      auto [it, inserted] = newest_.try_emplace(g, *when);
      if (!inserted && *when > it->second) it->second = *when;
    }
  }
}

void add_group_samples(ProbeResult& r, const FindTally& tally, std::set<std::string>& seen, double now) {
  for (const auto& [g, n] : tally.counts()) seen.insert(g);
  for (const auto& g : seen) {
    auto it = tally.counts().find(g);
    r.add("pacs_dicom_find_matches", kFindMatchesHelp, it == tally.counts().end() ? 0 : it->second, {{"group", g}});
  }
  for (const auto& [g, when] : tally.newest()) {
    r.add("pacs_dicom_find_newest_age_seconds", kFindNewestAgeHelp, std::max(0.0, now - when), {{"group", g}});
  }
}

}  // namespace pacs::dicom
