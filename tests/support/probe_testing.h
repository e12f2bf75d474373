// Helpers for tests that run probes directly or parse configs (header-only;
// the test links pacs_agent_lib for parse_config).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "agent/config.h"
#include "probes/config_table.h"
#include "probes/probe.h"

namespace pacs::test {

inline ProbeContext ctx_for(Duration timeout) {
  ProbeContext c;
  c.deadline = Clock::now() + timeout;
  return c;
}

// The sample named `name` (with exactly `labels`, when given), or null.
inline const Sample* find_sample(const ProbeResult& r, const std::string& name, const Labels& labels = {}) {
  for (const auto& s : r.samples)
    if (s.name == name && (labels.empty() || s.labels == labels)) return &s;
  return nullptr;
}

// Its value; a missing sample is a test failure (and -1).
inline double sample_value(const ProbeResult& r, const std::string& name, const Labels& labels = {}) {
  const Sample* s = find_sample(r, name, labels);
  EXPECT_NE(s, nullptr) << "no sample " << name;
  return s ? s->value : -1;
}

// The config must be rejected with exactly `want`.
inline void expect_config_error(const std::string& toml, const std::string& want,
                                const std::string& file = "t.toml") {
  try {
    parse_config(toml, file);
    ADD_FAILURE() << "accepted: " << toml;
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), want);
  }
}

}  // namespace pacs::test
