// The latest result of every scheduled probe, its counters, latency
// histogram and recent history, exposed as exposition text (for /metrics)
// and as a prometheus::Collectable.
//
// Scrape cost: results change only when a probe finishes, so each probe's
// lines are rendered when its state changes (record, record_skip,
// set_probes), not when it is scraped. text() joins them into one exposition
// (each family contiguous, one HELP/TYPE) once per change and hands the same
// immutable string to every scrape until the next change; deflated() does the
// same for its gzip part (agent/exposition.h). A scrape of an unchanged store
// costs a copy.
//
// deflated() compresses the exposition in pieces (one family's lines of up
// to kChunkProbes probes) and keeps a piece's deflated bytes while its lines
// stay byte for byte the same: the families that rarely change (interval,
// timeout, zero failure counters, skipped runs, success), about 40% of a
// DICOM target's text, are not compressed again when other results arrive,
// and a gzip scrape never needs the joined text.
//
// Thread-safety: all methods may be called concurrently. A probe's rendered
// lines are immutable once made (a change makes new ones), so a scrape holds
// the store's lock only to take a reference to each probe's lines, and joins
// and compresses outside it: recording a result never waits for a scrape,
// and a scrape never waits for a probe.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "agent/exposition.h"
#include "agent/probe_runner.h"
#include "agent/probe_table.h"
#include "probes/probe.h"

namespace pacs {

struct RunRecord {
  std::chrono::system_clock::time_point end;
  double duration_seconds = 0;
  bool success = false;
  Reason reason = Reason::none;
  std::string message;
};

// What the status page shows for one probe.
struct ProbeStatus : ProbeIdentity {
  Duration interval{}, timeout{};
  bool has_run = false;
  RunRecord last;
  std::chrono::system_clock::time_point last_success{};
  std::uint64_t runs = 0, failures = 0, skipped = 0;
  std::deque<RunRecord> recent;    // newest first
  std::deque<RunRecord> failures_recent;  // newest first; kept longer than `recent`
};

class ResultStore : public prometheus::Collectable {
 public:
  static constexpr size_t kChunkProbes = 128;
  static constexpr size_t kRecentRuns = 10;
  static constexpr size_t kRecentFailures = 20;
  // Upper bounds of pacs_probe_run_duration_seconds (see docs/metrics.md for
  // which rule or panel needs each).
  static const std::vector<double>& buckets();

  // Makes the store track exactly these probes: new ones start with zeroed
  // counters, ones whose (probe, target, fingerprint) is unchanged keep
  // their state, others vanish from Collect() at once.
  void set_probes(const std::vector<ProbeSpec>& specs);

  // Records a finished run. Ignored when the probe is no longer tracked with
  // that fingerprint (a run that was in flight across a reload).
  void record(const ProbeSpec& spec, const RunOutcome& outcome);
  void record_skip(const ProbeSpec& spec);

  std::vector<ProbeStatus> snapshot() const;
  std::vector<prometheus::MetricFamily> Collect() const override;

  // The series Collect() describes, as Prometheus text exposition. The same
  // string is returned until the store changes.
  std::shared_ptr<const std::string> text() const;
  // text(), deflated as one part for exposition::gzip_join(); cached the same way.
  std::shared_ptr<const exposition::DeflatedPart> deflated() const;
  // Bumped by every change that alters text().
  std::uint64_t generation() const;

 private:
  // The framework's families, in exposition order.
  enum Fam : size_t { kSuccess, kDuration, kHist, kLastRun, kLastOk, kRuns, kFails, kSkipped, kInterval, kTimeout, kFams };
  struct OwnFamily {  // one metric name of the probe's own samples
    std::string name, help, lines;
    bool counter = false;  // TYPE counter (Sample::counter), else gauge
  };
  // A probe's exposition lines; replaced, never modified, on every change.
  struct Rendered {
    std::array<std::string, kFams> lines;
    std::vector<OwnFamily> own;  // sorted by name
  };
  struct Entry {
    ProbeStatus status;
    ProbeSpec spec;  // identity (same_probe) and reasons; `make` is not used
    std::map<Reason, std::uint64_t> failures_by_reason;
    std::vector<std::uint64_t> bucket_counts;  // per bucket (not cumulative)
    double duration_sum = 0;
    std::vector<Sample> samples;
    std::string labels;  // probe="...",target="..."
    std::shared_ptr<const Rendered> rendered;  // made by render() on every change
  };
  using Key = std::pair<std::string, std::string>;  // probe, target
  Entry* find(const ProbeSpec& spec);  // null unless same_probe() as the tracked one
  static void render(Entry& e);
  // The exposition as pieces, in order: a family's HELP/TYPE, or its lines
  // of one group of kChunkProbes probes (the unit deflated() compresses).
  struct Piece {
    std::string key;                        // names it across generations
    std::string header;                     // HELP/TYPE pieces
    std::vector<const std::string*> lines;  // group pieces: into `probes` below
  };
  struct Layout {
    std::vector<std::shared_ptr<const Rendered>> probes;  // keeps `lines` valid
    std::vector<Piece> pieces;
    std::uint64_t generation = 0;
  };
  std::shared_ptr<const Layout> layout() const;

  mutable std::mutex mu_;
  std::map<Key, Entry> entries_;
  std::vector<Key> order_;  // config order, for stable output
  std::vector<Entry*> ordered_;  // entries_ in order_ (map nodes are stable)
  std::uint64_t generation_ = 0;

  // Lock order: deflate_mu_ or text_mu_, then layout_mu_, then mu_.
  mutable std::mutex layout_mu_;  // guards layout_
  mutable std::shared_ptr<const Layout> layout_;

  mutable std::mutex text_mu_;  // guards text_, text_generation_
  mutable std::shared_ptr<const std::string> text_;
  mutable std::uint64_t text_generation_ = ~std::uint64_t{0};

  struct Deflated {  // a piece as last compressed
    std::string header;
    std::vector<const std::string*> lines;  // into deflated_layout_
    exposition::DeflatedPart part;
  };
  mutable std::mutex deflate_mu_;  // guards the members below
  mutable std::shared_ptr<const exposition::DeflatedPart> deflated_;
  mutable std::uint64_t deflated_generation_ = ~std::uint64_t{0};
  mutable std::shared_ptr<const Layout> deflated_layout_;
  mutable std::map<std::string, Deflated> deflated_pieces_;
};

}  // namespace pacs
