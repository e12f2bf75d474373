// Golden metrics fixtures (node_exporter's fixture habit): every probe kind
// provides one in probes/<kind>/tests/golden_fixture.cpp. The metrics docs
// test (tests/e2e/metrics_docs_test.cpp) starts every fixture, runs the agent
// binary with all their targets against real local peers, and fails when a
// metric is exported but not documented in docs/metrics.md, or documented
// but never exported. tests/unit/registry_test.cpp checks that every kind
// has a fixture.
//
// A fixture starts the peers its targets need (they live as long as the
// fixture object) and returns TOML for targets that, together, make the agent
// export every metric the kind documents (including the ones that only
// appear on failures: give it a failing target too).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/support.h"

namespace pacs::test {

class GoldenFixture {
 public:
  virtual ~GoldenFixture() = default;
  // `dir` outlives the fixture. Target names must start with "<kind>-".
  // Throws (or returns "") when a peer cannot start; the test then fails.
  virtual std::string start(const TempDir& dir) = 0;
  // /probe requests (query strings, e.g. "target=dicom-echo&check=echo")
  // to make besides scraping /metrics. Optional.
  virtual std::vector<std::string> probe_requests() const { return {}; }
};

using GoldenFactory = std::unique_ptr<GoldenFixture> (*)();

struct GoldenRegistration {
  GoldenRegistration(const char* kind, GoldenFactory factory);
};

// Every registered fixture as (kind, factory), in link order.
std::vector<std::pair<std::string, GoldenFactory>>& golden_fixtures();

}  // namespace pacs::test

// In probes/<kind>/tests/golden_fixture.cpp:  PACS_GOLDEN_FIXTURE(dicom, DicomGolden);
#define PACS_GOLDEN_FIXTURE(kind, Class)                                                             \
  static const ::pacs::test::GoldenRegistration pacs_golden_registration_##kind(                     \
      #kind, []() -> std::unique_ptr<::pacs::test::GoldenFixture> { return std::make_unique<Class>(); })
