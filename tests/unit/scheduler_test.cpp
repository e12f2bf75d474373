// Scheduler and ResultStore behaviour with fake probes. Counts are checked
// with wide bounds: these tests prove behaviour (skipping, deadlines,
// isolation), never speed.
#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include "agent/result_store.h"
#include "agent/scheduler.h"
#include "probes/log.h"

namespace pacs {
namespace {
using namespace std::chrono_literals;

struct FakeState {
  std::atomic<int> runs{0};
  std::atomic<int> concurrent{0};
  std::atomic<int> max_concurrent{0};
  std::atomic<long long> deadline_slack_ms{-1};  // deadline - start as seen by the probe
  std::chrono::milliseconds sleep{0};
  bool ignore_deadline = false;
  bool throw_error = false;
  bool fail_without_reason = false;
};

class FakeProbe : public Probe {
 public:
  explicit FakeProbe(std::shared_ptr<FakeState> s) : s_(std::move(s)) {}
  ProbeResult run(const ProbeContext& ctx) override {
    auto start = Clock::now();
    s_->deadline_slack_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.deadline - start).count();
    int c = ++s_->concurrent;
    int m = s_->max_concurrent.load();
    while (c > m && !s_->max_concurrent.compare_exchange_weak(m, c)) {
    }
    ++s_->runs;
    auto until = s_->ignore_deadline ? start + s_->sleep : std::min(start + s_->sleep, ctx.deadline);
    std::this_thread::sleep_until(until);
    --s_->concurrent;
    if (s_->throw_error) throw std::runtime_error("boom");
    if (s_->fail_without_reason) return {false, Reason::none, "bug", {}};
    if (Clock::now() >= ctx.deadline) return ProbeResult::fail(Reason::io_timeout, "deadline");
    ProbeResult r = ProbeResult::ok("fine");
    r.add("pacs_test_value", "A test gauge.", 42, {{"kind", "x"}});
    return r;
  }

 private:
  std::shared_ptr<FakeState> s_;
};

ProbeSpec spec(const std::string& target, std::shared_ptr<FakeState> s, Duration interval, Duration timeout,
               std::string fp = "v1") {
  ProbeSpec p;
  p.probe = "test_fake";
  p.target = target;
  p.interval = interval;
  p.timeout = timeout;
  p.reasons = {Reason::io_timeout};
  p.make = [s] { return std::make_unique<FakeProbe>(s); };
  p.fingerprint = std::move(fp);
  return p;
}

const ProbeStatus* find(const std::vector<ProbeStatus>& v, const std::string& target) {
  for (const auto& s : v)
    if (s.target == target) return &s;
  return nullptr;
}

std::string metrics(const ResultStore& store) {
  std::string out;
  for (const auto& f : store.Collect())
    for (const auto& m : f.metric) {
      out += f.name + "{";
      for (const auto& l : m.label) out += l.name + "=" + l.value + ",";
      out += "} ";
      out += std::to_string(f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value) + "\n";
    }
  return out;
}

struct SchedulerTest : ::testing::Test {
  Logger log{LogLevel::error, [](std::string_view) {}};
  ResultStore store;
};

TEST_F(SchedulerTest, RunsOnItsInterval) {
  auto s = std::make_shared<FakeState>();
  Scheduler sch(store, log, 2);
  sch.apply({spec("a", s, 100ms, 50ms)});
  std::this_thread::sleep_for(1200ms);
  sch.stop();
  EXPECT_GE(s->runs.load(), 6);
  EXPECT_LE(s->runs.load(), 14);
  auto st = store.snapshot();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_EQ(st[0].runs, static_cast<std::uint64_t>(s->runs.load()));
  EXPECT_TRUE(st[0].last.success);
  EXPECT_EQ(st[0].skipped, 0u);
}

TEST_F(SchedulerTest, SkipsInsteadOfStackingAndCountsIt) {
  auto s = std::make_shared<FakeState>();
  s->sleep = 350ms;
  s->ignore_deadline = true;  // a probe that overruns its interval
  Scheduler sch(store, log, 4);
  sch.apply({spec("slow", s, 100ms, 100ms)});
  std::this_thread::sleep_for(1200ms);
  sch.stop();
  EXPECT_EQ(s->max_concurrent.load(), 1) << "runs of one probe were stacked";
  auto st = store.snapshot();
  EXPECT_GE(st[0].skipped, 4u);
  EXPECT_NE(metrics(store).find("pacs_probe_skipped_runs_total{probe=test_fake,target=slow,} " +
                                std::to_string(static_cast<double>(st[0].skipped))),
            std::string::npos);
}

TEST_F(SchedulerTest, EachRunGetsItsTimeoutAsDeadline) {
  auto s = std::make_shared<FakeState>();
  s->sleep = 10s;  // would run forever; the deadline ends it
  Scheduler sch(store, log, 2);
  sch.apply({spec("d", s, 400ms, 200ms)});
  std::this_thread::sleep_for(700ms);
  sch.stop();
  long long slack = s->deadline_slack_ms.load();
  EXPECT_LE(slack, 200);
  EXPECT_GE(slack, 150);
  auto st = store.snapshot();
  EXPECT_FALSE(st[0].last.success);
  EXPECT_EQ(st[0].last.reason, Reason::io_timeout);
}

TEST_F(SchedulerTest, ThrowingProbeIsRecordedAsInternalAndOthersGoOn) {
  auto bad = std::make_shared<FakeState>();
  bad->throw_error = true;
  auto liar = std::make_shared<FakeState>();
  liar->fail_without_reason = true;
  auto good = std::make_shared<FakeState>();
  Scheduler sch(store, log, 2);
  sch.apply({spec("bad", bad, 50ms, 40ms), spec("liar", liar, 50ms, 40ms), spec("good", good, 50ms, 40ms)});
  std::this_thread::sleep_for(600ms);
  sch.stop();
  auto st = store.snapshot();
  const auto* b = find(st, "bad");
  ASSERT_TRUE(b && b->has_run);
  EXPECT_EQ(b->last.reason, Reason::internal);
  EXPECT_EQ(b->last.message, "internal error: boom");
  EXPECT_EQ(b->failures, b->runs);
  EXPECT_EQ(find(st, "liar")->last.reason, Reason::internal);
  EXPECT_TRUE(find(st, "good")->last.success);
  EXPECT_GE(good->runs.load(), 5);
  auto text = metrics(store);
  EXPECT_NE(text.find("pacs_probe_failures_total{probe=test_fake,target=bad,reason=internal,}"), std::string::npos);
  // Reasons the probe can produce are exported at 0 before they happen.
  EXPECT_NE(text.find("pacs_probe_failures_total{probe=test_fake,target=good,reason=io_timeout,} 0.0"), std::string::npos);
}

TEST_F(SchedulerTest, HungProbeDoesNotDelayOthers) {
  auto hung = std::make_shared<FakeState>();
  hung->sleep = 3s;
  hung->ignore_deadline = true;
  auto good = std::make_shared<FakeState>();
  Scheduler sch(store, log, 2);
  sch.apply({spec("hung", hung, 100ms, 100ms), spec("good", good, 100ms, 50ms)});
  std::this_thread::sleep_for(1000ms);
  int good_runs = good->runs.load();
  EXPECT_GE(good_runs, 6) << "the healthy probe lost its schedule while another hung";
  EXPECT_EQ(hung->runs.load(), 1);
  sch.stop();  // waits for the hung run: stop() joins everything
}

TEST_F(SchedulerTest, ApplyKeepsUnchangedRemovesAndAddsProbes) {
  auto a = std::make_shared<FakeState>(), b = std::make_shared<FakeState>(), c = std::make_shared<FakeState>();
  Scheduler sch(store, log, 2);
  sch.apply({spec("a", a, 50ms, 40ms), spec("b", b, 50ms, 40ms)});
  std::this_thread::sleep_for(400ms);
  auto runs_a = find(store.snapshot(), "a")->runs;
  ASSERT_GT(runs_a, 0u);
  sch.apply({spec("a", a, 50ms, 40ms), spec("c", c, 50ms, 40ms)});
  std::this_thread::sleep_for(300ms);
  auto st = store.snapshot();
  ASSERT_EQ(st.size(), 2u);
  EXPECT_FALSE(find(st, "b"));
  EXPECT_GE(find(st, "a")->runs, runs_a) << "counters of an unchanged probe were reset";
  EXPECT_TRUE(find(st, "c") && find(st, "c")->has_run);
  auto text = metrics(store);
  EXPECT_EQ(text.find("target=b,"), std::string::npos) << "removed target still exported";
  int b_runs = b->runs.load();
  std::this_thread::sleep_for(200ms);
  EXPECT_LE(b->runs.load(), b_runs + 1) << "removed probe still scheduled";
  // A changed fingerprint is a new probe: counters start again.
  sch.apply({spec("a", a, 50ms, 40ms, "v2")});
  EXPECT_EQ(store.snapshot()[0].runs, 0u);
  sch.stop();
}

TEST_F(SchedulerTest, StopJoinsAndNothingRunsAfterwards) {
  auto s = std::make_shared<FakeState>();
  s->sleep = 100ms;
  {
    Scheduler sch(store, log, 3);
    sch.apply({spec("a", s, 20ms, 150ms)});
    std::this_thread::sleep_for(300ms);
    sch.stop();
    EXPECT_EQ(sch.running(), 0);
  }
  int runs = s->runs.load();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(s->runs.load(), runs);
}

TEST_F(SchedulerTest, LagOfEveryRunIsObservedAndGrowsWhenNoWorkerIsFree) {
  // One worker, held 600 ms at a time by a probe that ignores its deadline:
  // the quick probe's runs wait in the queue for it, i.e. start late.
  auto blocker = std::make_shared<FakeState>();
  blocker->sleep = 600ms;
  blocker->ignore_deadline = true;
  auto quick = std::make_shared<FakeState>();
  Scheduler sch(store, log, 1);
  sch.apply({spec("blocker", blocker, 100ms, 100ms), spec("quick", quick, 50ms, 40ms)});
  auto end = std::chrono::steady_clock::now() + 20s;
  while ((blocker->runs < 2 || quick->runs < 3) && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(20ms);
  }
  sch.stop();
  auto lag = sch.lag();
  // Every run that started was observed once.
  EXPECT_EQ(lag.count, static_cast<std::uint64_t>(blocker->runs + quick->runs));
  ASSERT_EQ(lag.buckets.size(), Scheduler::lag_buckets().size());
  for (size_t i = 1; i < lag.buckets.size(); ++i) EXPECT_LE(lag.buckets[i - 1], lag.buckets[i]);
  size_t le_250ms = static_cast<size_t>(std::find(Scheduler::lag_buckets().begin(), Scheduler::lag_buckets().end(), 0.25) -
                                        Scheduler::lag_buckets().begin());
  EXPECT_LT(lag.buckets.at(le_250ms), lag.count) << "no run waited for the busy worker";
  EXPECT_GT(lag.sum, 0.25);
  auto fam = sch.lag_family();
  EXPECT_EQ(fam.name, "pacs_agent_scheduling_lag_seconds");
  ASSERT_EQ(fam.metric.size(), 1u);
  EXPECT_EQ(fam.metric[0].histogram.sample_count, lag.count);
  EXPECT_EQ(fam.metric[0].histogram.bucket.size(), Scheduler::lag_buckets().size() + 1);
}

TEST(ResultStore, HistogramAndSamples) {
  ResultStore store;
  auto s = std::make_shared<FakeState>();
  auto p = spec("h", s, 1s, 1s);
  store.set_probes({p});
  auto text0 = metrics(store);
  EXPECT_EQ(text0.find("pacs_probe_success{"), std::string::npos) << "success exported before any run";
  ProbeResult ok = ProbeResult::ok();
  ok.add("pacs_test_value", "A test gauge.", 7, {{"kind", "x"}});
  store.record(p, {ok, 0.003, std::chrono::system_clock::now()});
  store.record(p, {ProbeResult::fail(Reason::io_timeout, "t"), 0.7, std::chrono::system_clock::now()});
  store.record(p, {ProbeResult::fail(Reason::io_timeout, "t"), 99, std::chrono::system_clock::now()});
  bool found = false;
  for (const auto& f : store.Collect()) {
    if (f.name == "pacs_probe_run_duration_seconds") {
      found = true;
      const auto& h = f.metric.at(0).histogram;
      EXPECT_EQ(h.sample_count, 3u);
      EXPECT_DOUBLE_EQ(h.sample_sum, 99.703);
      EXPECT_EQ(h.bucket.front().upper_bound, 0.01);
      EXPECT_EQ(h.bucket.front().cumulative_count, 1u);  // le=0.01
      EXPECT_EQ(h.bucket.at(4).upper_bound, 0.5);
      EXPECT_EQ(h.bucket.at(4).cumulative_count, 1u);    // le=0.5
      EXPECT_EQ(h.bucket.at(5).upper_bound, 1.0);
      EXPECT_EQ(h.bucket.at(5).cumulative_count, 2u);    // le=1
      EXPECT_EQ(h.bucket.back().cumulative_count, 3u);   // +Inf
    }
    if (f.name == "pacs_test_value") ADD_FAILURE() << "samples of a failed run must replace older ones";
  }
  EXPECT_TRUE(found);
  auto text = metrics(store);
  EXPECT_NE(text.find("pacs_probe_success{probe=test_fake,target=h,} 0.0"), std::string::npos);
  EXPECT_NE(text.find("pacs_probe_failures_total{probe=test_fake,target=h,reason=io_timeout,} 2.0"), std::string::npos);
  EXPECT_NE(text.find("pacs_probe_last_success_timestamp_seconds{probe=test_fake,target=h,}"), std::string::npos);
}

}  // namespace
}  // namespace pacs
