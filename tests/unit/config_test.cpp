// The config loader: every invalid file gives exactly one precise message
// naming file, line and key; valid files give the expected settings.
#include <gtest/gtest.h>

#include <fstream>

#include <toml.hpp>

#include "agent/config.h"
#include "probes/config_table.h"
#include "probes/kind.h"
#include "probes/registry.h"
#include "tests/support/support.h"

namespace pacs {
namespace {

struct BadCase {
  const char* name;
  const char* toml;
  const char* error;
};

class InvalidConfig : public ::testing::TestWithParam<BadCase> {};

// "{kinds}" in an expected message stands for the registered kinds, in
// registry order: adding a kind must not mean editing this table.
std::string expected_message(const char* error) {
  std::string out = error, kinds_list;
  for (const Kind* k : kinds()) kinds_list += (kinds_list.empty() ? "" : ", ") + std::string(k->name);
  if (auto at = out.find("{kinds}"); at != std::string::npos) out.replace(at, 7, kinds_list);
  return out;
}

TEST_P(InvalidConfig, GivesExactMessage) {
  const auto& c = GetParam();
  try {
    parse_config(c.toml, "pacs-agent.toml");
    FAIL() << "config was accepted:\n" << c.toml;
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), expected_message(c.error));
  }
}

const BadCase kBad[] = {
    {"syntax", "[agent]\ninterval = ", "pacs-agent.toml:2: syntax error: toml::parse_key_value_pair: missing value after key-value separator '='"},
    {"duplicate_table", "[agent]\n[agent]\n", "pacs-agent.toml:2: syntax error: toml::insert_value: table (\"agent\") already exists."},
    {"unknown_agent_key", "[agent]\ninterval = \"15s\"\nintervall = \"15s\"\n", "pacs-agent.toml:3: agent.intervall: unknown key"},
    {"bad_duration", "[agent]\ninterval = \"5x\"\n", "pacs-agent.toml:2: agent.interval: invalid duration \"5x\" (use e.g. \"500ms\", \"15s\", \"2m\", \"1h\")"},
    // A sum of capped numbers overflowed into the scheduler's clock (a hot loop).
    {"duration_overflow", "[agent]\ninterval = \"120000d\"\n", "pacs-agent.toml:2: agent.interval: duration \"120000d\" is too long (at most 366d)"},
    {"duration_sum_overflow", "[[queue]]\nname = \"q\"\ninterval = \"300d300d\"\n", "pacs-agent.toml:3: queue[0].interval: duration \"300d300d\" is too long (at most 366d)"},
    {"duration_number_overflow", "[agent]\ninterval = \"99999999999s\"\n", "pacs-agent.toml:2: agent.interval: duration \"99999999999s\" is too long (at most 366d)"},
    // Shutdown waits for running probes; the unit's TimeoutStopSec is set above this.
    {"timeout_over_max", "[agent]\ninterval = \"1h\"\ntimeout = \"3m\"\n", "pacs-agent.toml:3: agent.timeout: must be at most 2m"},
    {"target_timeout_over_max", "[[queue]]\nname = \"q\"\ninterval = \"1h\"\ntimeout = \"121s\"\n", "pacs-agent.toml:4: queue[0].timeout: must be at most 2m"},
    {"duration_not_string", "[agent]\ninterval = 15\n", "pacs-agent.toml:2: agent.interval: must be a duration string such as \"15s\" or \"2m\""},
    {"zero_duration", "[agent]\ninterval = \"0s\"\n", "pacs-agent.toml:2: agent.interval: must be greater than 0"},
    {"timeout_over_interval", "[agent]\ninterval = \"30s\"\ntimeout = \"1m\"\n", "pacs-agent.toml:3: agent.timeout: must not exceed agent.interval"},
    {"ae_title_too_long", "[agent]\ncalling_ae_title = \"THIS_IS_WAY_TOO_LONG\"\n", "pacs-agent.toml:2: agent.calling_ae_title: must be 1..16 printable ASCII characters without backslash"},
    {"ae_title_backslash", "[agent]\ncalling_ae_title = 'A\\B'\n", "pacs-agent.toml:2: agent.calling_ae_title: must be 1..16 printable ASCII characters without backslash"},
    {"concurrency_range", "[agent]\nmax_concurrent_probes = 0\n", "pacs-agent.toml:2: agent.max_concurrent_probes: must be 1..256"},
    {"listen_address", "[web]\nlisten_address = \"nope\"\n", "pacs-agent.toml:2: web.listen_address: invalid address \"nope\" (want host:port)"},
    {"listen_port_range", "[web]\nlisten_address = \"0.0.0.0:70000\"\n", "pacs-agent.toml:2: web.listen_address: invalid address \"0.0.0.0:70000\" (want host:port)"},
    {"unknown_web_key", "[web]\nlisten = \"0.0.0.0:1\"\n", "pacs-agent.toml:2: web.listen: unknown key"},
    {"unknown_section", "[[dicomm]]\nname = \"x\"\n", "pacs-agent.toml:1: dicomm: unknown section or top-level key (known: agent, web, {kinds})"},
    {"stray_top_level_key", "interval = \"15s\"\n", "pacs-agent.toml:1: interval: unknown section or top-level key (known: agent, web, {kinds})"},
    {"section_not_array", "[dicom]\nname = \"x\"\n", "pacs-agent.toml:1: dicom: must be an array of tables (write [[dicom]])"},
    {"agent_not_table", "agent = 1\n", "pacs-agent.toml:1: agent: must be a table ([agent])"},
    {"missing_name", "[[queue]]\ntype = \"directory\"\n", "pacs-agent.toml:1: queue[0]: missing required key \"name\""},
    {"bad_name", "[[queue]]\nname = \"has space\"\n", "pacs-agent.toml:2: queue[0].name: must match [A-Za-z0-9][A-Za-z0-9_.-]* and be at most 64 characters"},
    {"target_timeout_over_interval", "[[queue]]\nname = \"q\"\ninterval = \"5s\"\ntimeout = \"10s\"\n", "pacs-agent.toml:4: queue[0].timeout: must not exceed interval (5s)"},
};

INSTANTIATE_TEST_SUITE_P(Table, InvalidConfig, ::testing::ValuesIn(kBad),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(Config, MissingFileNamesThePath) {
  try {
    load_config_file("/nonexistent/pacs-agent.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "/nonexistent/pacs-agent.toml: cannot open: No such file or directory");
  }
}

TEST(Config, AgentAndWebSettingsAndDefaults) {
  auto c = parse_config(
      "[agent]\ncalling_ae_title = \"MONITOR\"\ninterval = \"1m\"\ntimeout = \"20s\"\nmax_concurrent_probes = 4\n"
      "[web]\nlisten_address = [\"127.0.0.1:9727\", \"[::1]:9727\"]\n",
      "x.toml");
  EXPECT_EQ(c->agent.default_interval, std::chrono::minutes(1));
  EXPECT_EQ(c->agent.default_timeout, std::chrono::seconds(20));
  EXPECT_EQ(c->agent.max_concurrent_probes, 4);
  EXPECT_EQ(c->web.listen_addresses, (std::vector<std::string>{"127.0.0.1:9727", "[::1]:9727"}));

  auto d = parse_config("", "empty.toml");
  EXPECT_EQ(d->agent.default_interval, std::chrono::seconds(30));
  EXPECT_EQ(d->agent.default_timeout, std::chrono::seconds(10));
  EXPECT_EQ(d->web.listen_addresses, std::vector<std::string>{"0.0.0.0:9727"});
  EXPECT_TRUE(d->probes.empty());
}

TEST(Config, EmbeddedDefaultIsValid) {
  auto c = default_config();
  EXPECT_EQ(c->source, "<embedded default>");
}

TEST(Duration, ParsesAndFormats) {
  EXPECT_EQ(parse_duration("500ms"), Duration(500));
  EXPECT_EQ(parse_duration("15s"), Duration(15000));
  EXPECT_EQ(parse_duration("1h30m"), Duration(5'400'000));
  EXPECT_EQ(parse_duration("1d"), Duration(86'400'000));
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("15"));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("1.5s"));
  EXPECT_FALSE(parse_duration("-1s"));
  EXPECT_EQ(format_duration(Duration(5'400'500)), "1h30m500ms");
  EXPECT_EQ(format_duration(Duration(0)), "0s");
}

TEST(HostPort, Splits) {
  std::string h;
  int p;
  EXPECT_TRUE(split_host_port("0.0.0.0:9727", h, p));
  EXPECT_EQ(h, "0.0.0.0");
  EXPECT_EQ(p, 9727);
  EXPECT_TRUE(split_host_port(":9727", h, p));
  EXPECT_EQ(h, "");
  EXPECT_TRUE(split_host_port("[::1]:80", h, p));
  EXPECT_EQ(h, "::1");
  EXPECT_FALSE(split_host_port("::1:80", h, p));
  EXPECT_FALSE(split_host_port("host", h, p));
  EXPECT_FALSE(split_host_port("host:", h, p));
  EXPECT_FALSE(split_host_port("host:99999", h, p));
}

TEST(ConfigTable, NestedUnknownKeysAndCanonicalForm) {
  std::istringstream in("[t]\na = 1\n[t.sub]\nb = \"x\"\nc = 2\n");
  auto root = toml::parse(in, "n.toml");
  ConfigTable t(root.as_table().at("t"), "t");
  EXPECT_EQ(t.integer("a", 0, 0, 10), 1);
  auto sub = t.table("sub");
  ASSERT_TRUE(sub);
  EXPECT_EQ(sub->string("b"), "x");
  try {
    t.check_unknown_keys();
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "n.toml:5: t.sub.c: unknown key");
  }
  std::istringstream in2("[t]\n[t.sub]\nc = 2\nb = \"x\"\n[t2]\na = 1\n");
  auto root2 = toml::parse(in2, "m.toml");
  // Same content, other key order: same fingerprint.
  std::istringstream in3("[t]\na = 1\n[t.sub]\nb = \"x\"\nc = 2\n");
  auto root3 = toml::parse(in3, "o.toml");
  EXPECT_EQ(ConfigTable(root.as_table().at("t"), "t").canonical(), ConfigTable(root3.as_table().at("t"), "t").canonical());
  EXPECT_NE(ConfigTable(root.as_table().at("t"), "t").canonical(), ConfigTable(root2.as_table().at("t"), "t").canonical());
}

// systemd SIGKILLs a service that takes longer than TimeoutStopSec to stop;
// the agent's shutdown waits for running probes, each bounded by its timeout.
TEST(Deploy, UnitStopTimeoutExceedsTheLongestProbeTimeout) {
  std::ifstream unit(std::string(PACS_SOURCE_DIR) + "/deploy/pacs-agent.service");
  ASSERT_TRUE(unit);
  std::string line, value;
  while (std::getline(unit, line))
    if (line.rfind("TimeoutStopSec=", 0) == 0) value = line.substr(15);
  auto stop = parse_duration(value);
  ASSERT_TRUE(stop) << "TimeoutStopSec=" << value;
  EXPECT_GE(*stop, kMaxProbeTimeout + std::chrono::seconds(2)) << "TimeoutStopSec=" << value;
}

}  // namespace
}  // namespace pacs
