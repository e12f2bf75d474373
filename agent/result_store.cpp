#include "agent/result_store.h"

#include <algorithm>
#include <limits>
#include <string_view>
#include <tuple>

#include "agent/probe_metrics.h"
#include "agent/probe_table.h"

namespace pacs {

namespace pm = prometheus;
namespace M = probe_metrics;
namespace X = exposition;

namespace {
double unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

const char* type_name(pm::MetricType t) {
  switch (t) {
    case pm::MetricType::Counter: return "counter";
    case pm::MetricType::Histogram: return "histogram";
    default: return "gauge";
  }
}
}  // namespace

const std::vector<double>& ResultStore::buckets() {
  // 1 s: PacsDicomEchoSlow (p90 > 1 s) is exact at a bucket bound. 0.5 s:
  // the fleet overview's orange threshold. Below, enough resolution for LAN
  // (10 ms) and WAN (50-250 ms) round trips; above, up to the default 10 s
  // timeout (longer runs count in +Inf, where a quantile reads 10 s).
  static const std::vector<double> b = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return b;
}

void ResultStore::set_probes(const std::vector<ProbeSpec>& specs) {
  std::lock_guard lock(mu_);
  carry_over(entries_, order_, specs, [](const ProbeSpec& spec) {
    Entry e;
    e.status.identify(spec);
    for (Reason r : spec.reasons) e.failures_by_reason[r] = 0;
    e.failures_by_reason[Reason::internal] = 0;  // any probe can throw
    e.bucket_counts.assign(buckets().size(), 0);
    e.labels = "probe=\"";
    X::append_label_value(e.labels, spec.probe);
    e.labels += "\",target=\"";
    X::append_label_value(e.labels, spec.target);
    e.labels += '"';
    return e;
  });
  for (size_t i = 0; i < specs.size(); ++i) {  // order_ is specs' order
    Entry& e = entries_.at(order_[i]);
    e.status.interval = specs[i].interval;
    e.status.timeout = specs[i].timeout;
    render(e);
  }
  ordered_.clear();
  for (const auto& k : order_) ordered_.push_back(&entries_.at(k));
  ++generation_;
}

ResultStore::Entry* ResultStore::find(const ProbeSpec& spec) {
  auto it = entries_.find({spec.probe, spec.target});
  if (it == entries_.end() || !same_probe(it->second.spec, spec)) return nullptr;
  return &it->second;
}

void ResultStore::record(const ProbeSpec& spec, const RunOutcome& outcome) {
  std::lock_guard lock(mu_);
  Entry* e = find(spec);
  if (!e) return;
  const ProbeResult& result = outcome.result;
  RunRecord rec{outcome.end, outcome.seconds, result.success, result.success ? Reason::none : result.reason,
                result.message};
  auto& st = e->status;
  st.has_run = true;
  st.last = rec;
  ++st.runs;
  if (result.success) {
    st.last_success = outcome.end;
  } else {
    ++st.failures;
    ++e->failures_by_reason[rec.reason];
    st.failures_recent.push_front(rec);
    if (st.failures_recent.size() > kRecentFailures) st.failures_recent.pop_back();
  }
  st.recent.push_front(rec);
  if (st.recent.size() > kRecentRuns) st.recent.pop_back();
  const auto& b = buckets();
  auto idx = static_cast<size_t>(std::lower_bound(b.begin(), b.end(), outcome.seconds) - b.begin());
  if (idx < e->bucket_counts.size()) ++e->bucket_counts[idx];  // beyond the last bucket: only +Inf
  e->duration_sum += outcome.seconds;
  e->samples = result.samples;
  render(*e);
  ++generation_;
}

void ResultStore::record_skip(const ProbeSpec& spec) {
  std::lock_guard lock(mu_);
  if (Entry* e = find(spec)) {
    ++e->status.skipped;
    render(*e);
    ++generation_;
  }
}

std::vector<ProbeStatus> ResultStore::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<ProbeStatus> out;
  out.reserve(order_.size());
  for (const auto* e : ordered_) out.push_back(e->status);
  return out;
}

void ResultStore::render(Entry& e) {
  const auto& st = e.status;
  auto r = std::make_shared<Rendered>();
  auto open = [&e, &r](Fam f, std::string_view name) -> std::string& {
    std::string& o = r->lines[f];
    o += name;
    o += '{';
    o += e.labels;
    return o;
  };
  auto gauge = [&](Fam f, const M::Family& fam, double v) {
    std::string& o = open(f, fam.name);
    o += "} ";
    X::append_value(o, v);
    o += '\n';
  };
  auto counter = [&](Fam f, const M::Family& fam, std::uint64_t v) {
    std::string& o = open(f, fam.name);
    o += "} ";
    X::append_uint(o, v);
    o += '\n';
  };
  gauge(kInterval, M::kInterval, std::chrono::duration<double>(st.interval).count());
  gauge(kTimeout, M::kTimeout, std::chrono::duration<double>(st.timeout).count());
  counter(kRuns, M::kRuns, st.runs);
  counter(kSkipped, M::kSkipped, st.skipped);
  for (const auto& [reason, n] : e.failures_by_reason) {
    std::string& o = open(kFails, M::kFailures.name);
    o += ",reason=\"";
    o += to_string(reason);
    o += "\"} ";
    X::append_uint(o, n);
    o += '\n';
  }
  {
    const std::string bucket = std::string(M::kRunDuration.name) + "_bucket";
    std::uint64_t cum = 0;
    for (size_t i = 0; i <= buckets().size(); ++i) {
      std::string& o = open(kHist, bucket);
      o += ",le=\"";
      if (i < buckets().size()) {
        cum += e.bucket_counts[i];
        X::append_value(o, buckets()[i]);
      } else {
        cum = st.runs;
        o += "+Inf";
      }
      o += "\"} ";
      X::append_uint(o, cum);
      o += '\n';
    }
    std::string& s = open(kHist, std::string(M::kRunDuration.name) + "_sum");
    s += "} ";
    X::append_value(s, e.duration_sum);
    s += '\n';
    std::string& c = open(kHist, std::string(M::kRunDuration.name) + "_count");
    c += "} ";
    X::append_uint(c, st.runs);
    c += '\n';
  }
  if (!st.has_run) {  // no result yet: no success/duration series
    e.rendered = std::move(r);
    return;
  }
  gauge(kSuccess, M::kSuccess, st.last.success ? 1 : 0);
  gauge(kDuration, M::kDuration, st.last.duration_seconds);
  gauge(kLastRun, M::kLastRun, unix_seconds(st.last.end));
  if (st.last_success.time_since_epoch().count() != 0) gauge(kLastOk, M::kLastSuccess, unix_seconds(st.last_success));
  auto& own = r->own;
  for (const auto& s : e.samples) {
    auto it = std::find_if(own.begin(), own.end(), [&](const OwnFamily& f) { return f.name == s.name; });
    if (it == own.end()) it = own.insert(own.end(), {s.name, s.help, {}, s.counter});
    std::string& o = it->lines;
    o += s.name;
    o += '{';
    o += e.labels;
    for (const auto& [k, v] : s.labels) {
      o += ',';
      o += k;
      o += "=\"";
      X::append_label_value(o, v);
      o += '"';
    }
    o += "} ";
    X::append_value(o, s.value);
    o += '\n';
  }
  std::sort(own.begin(), own.end(), [](const OwnFamily& a, const OwnFamily& b) { return a.name < b.name; });
  e.rendered = std::move(r);
}

std::shared_ptr<const ResultStore::Layout> ResultStore::layout() const {
  static constexpr std::array<const M::Family*, kFams> kFamilies = {
      &M::kSuccess, &M::kDuration, &M::kRunDuration, &M::kLastRun, &M::kLastSuccess,
      &M::kRuns,    &M::kFailures, &M::kSkipped,     &M::kInterval, &M::kTimeout};
  std::lock_guard guard(layout_mu_);
  auto snap = std::make_shared<Layout>();
  {
    // Only references are taken under mu_: rendered lines never change.
    std::lock_guard lock(mu_);
    if (layout_ && layout_->generation == generation_) return layout_;
    snap->generation = generation_;
    snap->probes.reserve(ordered_.size());
    for (const auto* e : ordered_) snap->probes.push_back(e->rendered);
  }
  const auto& probes = snap->probes;
  auto& pieces = snap->pieces;
  // One family: its header, then its lines (of probe `index` each) in groups
  // of kChunkProbes probes.
  auto family = [&pieces](std::string_view name, std::string_view help, const char* type,
                          const std::vector<std::pair<size_t, const std::string*>>& lines) {
    Piece head;
    head.key = std::string(name) + "#";
    X::append_header(head.header, name, help, type);
    pieces.push_back(std::move(head));
    size_t group = ~size_t{0};
    for (const auto& [index, text] : lines) {
      if (index / kChunkProbes != group) {
        group = index / kChunkProbes;
        pieces.push_back({std::string(name) + "#" + std::to_string(group), {}, {}});
      }
      pieces.back().lines.push_back(text);
    }
  };
  std::vector<std::pair<size_t, const std::string*>> lines;
  for (size_t f = 0; f < kFams; ++f) {
    lines.clear();
    for (size_t i = 0; i < probes.size(); ++i)
      if (!probes[i]->lines[f].empty()) lines.emplace_back(i, &probes[i]->lines[f]);
    if (lines.empty()) continue;  // e.g. no run has finished yet: HELP/TYPE alone would be noise
    family(kFamilies[f]->name, kFamilies[f]->help, type_name(kFamilies[f]->type), lines);
  }
  // The probes' own families, by name; each family's lines in config order.
  struct Own {
    std::string_view help;  // the first probe's (every sample of a name has the same, and the same type)
    bool counter = false;
    std::vector<std::pair<size_t, const std::string*>> lines;
  };
  std::map<std::string_view, Own> own;
  for (size_t i = 0; i < probes.size(); ++i) {
    for (const auto& f : probes[i]->own) {
      auto [it, fresh] = own.try_emplace(f.name);
      if (fresh) {
        it->second.help = f.help;
        it->second.counter = f.counter;
      }
      it->second.lines.emplace_back(i, &f.lines);
    }
  }
  for (const auto& [name, f] : own) family(name, f.help, f.counter ? "counter" : "gauge", f.lines);
  layout_ = std::move(snap);
  return layout_;
}

std::shared_ptr<const std::string> ResultStore::text() const {
  std::lock_guard guard(text_mu_);
  auto snap = layout();
  if (text_ && text_generation_ == snap->generation) return text_;
  auto out = std::make_shared<std::string>();
  out->reserve(text_ ? text_->size() + text_->size() / 8 : 4096);
  for (const auto& p : snap->pieces) {
    *out += p.header;
    for (const auto* l : p.lines) *out += *l;
  }
  text_ = std::move(out);
  text_generation_ = snap->generation;
  return text_;
}

std::uint64_t ResultStore::generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

std::shared_ptr<const X::DeflatedPart> ResultStore::deflated() const {
  std::lock_guard guard(deflate_mu_);
  auto snap = layout();
  if (deflated_ && deflated_generation_ == snap->generation) return deflated_;
  // A piece whose lines are unchanged since the last call keeps its bytes
  // (the same rendered string, or an equal one after its probe changed).
  auto same = [](const Deflated& old, const Piece& now) {
    if (old.header != now.header || old.lines.size() != now.lines.size()) return false;
    for (size_t i = 0; i < now.lines.size(); ++i)
      if (old.lines[i] != now.lines[i] && *old.lines[i] != *now.lines[i]) return false;
    return true;
  };
  auto out = std::make_shared<X::DeflatedPart>();
  std::map<std::string, Deflated> next;
  std::string scratch;
  for (const auto& p : snap->pieces) {
    auto old = deflated_pieces_.find(p.key);
    Deflated d;
    if (old != deflated_pieces_.end() && same(old->second, p)) {
      d.part = std::move(old->second.part);
    } else {
      scratch = p.header;
      for (const auto* l : p.lines) scratch += *l;
      d.part = X::deflate_part(scratch);
    }
    d.header = p.header;
    d.lines = p.lines;
    X::append_part(*out, d.part);
    next.emplace(p.key, std::move(d));
  }
  deflated_pieces_ = std::move(next);
  deflated_layout_ = snap;  // keeps the lines the pieces point to
  deflated_ = std::move(out);
  deflated_generation_ = snap->generation;
  return deflated_;
}

std::vector<pm::MetricFamily> ResultStore::Collect() const {
  std::vector<pm::MetricFamily> fams;
  // The references below point into `fams`: reserve so the fixed families
  // never reallocate (append_samples adds more only after them).
  fams.reserve(32);
  auto& success = M::family(fams, M::kSuccess);
  auto& duration = M::family(fams, M::kDuration);
  auto& hist = M::family(fams, M::kRunDuration);
  auto& last_run = M::family(fams, M::kLastRun);
  auto& last_ok = M::family(fams, M::kLastSuccess);
  auto& runs = M::family(fams, M::kRuns);
  auto& fails = M::family(fams, M::kFailures);
  auto& skipped = M::family(fams, M::kSkipped);
  auto& interval = M::family(fams, M::kInterval);
  auto& timeout = M::family(fams, M::kTimeout);
  std::vector<std::tuple<std::string, std::string, std::vector<Sample>>> samples;

  {
    std::lock_guard lock(mu_);
    for (const auto* ep : ordered_) {
      const Entry& e = *ep;
      const auto& st = e.status;
      auto add = [&](pm::MetricFamily& f, double v) {
        auto m = M::series(st.probe, st.target);
        if (f.type == pm::MetricType::Counter) m.counter.value = v;
        else m.gauge.value = v;
        f.metric.push_back(std::move(m));
      };
      add(interval, std::chrono::duration<double>(st.interval).count());
      add(timeout, std::chrono::duration<double>(st.timeout).count());
      add(runs, static_cast<double>(st.runs));
      add(skipped, static_cast<double>(st.skipped));
      for (const auto& [reason, n] : e.failures_by_reason) {
        auto m = M::series(st.probe, st.target);
        m.label.push_back({"reason", std::string(to_string(reason))});
        m.counter.value = static_cast<double>(n);
        fails.metric.push_back(std::move(m));
      }
      {
        auto m = M::series(st.probe, st.target);
        std::uint64_t cum = 0;
        for (size_t i = 0; i < buckets().size(); ++i) {
          cum += e.bucket_counts[i];
          m.histogram.bucket.push_back({cum, buckets()[i]});
        }
        m.histogram.bucket.push_back({st.runs, std::numeric_limits<double>::infinity()});
        m.histogram.sample_count = st.runs;
        m.histogram.sample_sum = e.duration_sum;
        hist.metric.push_back(std::move(m));
      }
      if (!st.has_run) continue;  // no result yet: no success/duration series
      add(success, st.last.success ? 1 : 0);
      add(duration, st.last.duration_seconds);
      add(last_run, unix_seconds(st.last.end));
      if (st.last_success.time_since_epoch().count() != 0) add(last_ok, unix_seconds(st.last_success));
      if (!e.samples.empty()) samples.emplace_back(st.probe, st.target, e.samples);
    }
  }
  for (const auto& [p, t, s] : samples) M::append_samples(fams, p, t, s);
  // Families with no series would print only HELP/TYPE; drop them.
  fams.erase(std::remove_if(fams.begin(), fams.end(), [](const pm::MetricFamily& f) { return f.metric.empty(); }),
             fams.end());
  return fams;
}

}  // namespace pacs
