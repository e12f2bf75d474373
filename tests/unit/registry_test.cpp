// The house rule "a new kind is one folder plus one registry line", proved:
// the folders under probes/ are exactly the registered kinds, and each kind
// carries what the rest of the repository generates from (README sections,
// sample.toml, golden fixture).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "agent/config.h"
#include "probes/log.h"
#include "probes/registry.h"

namespace pacs {
namespace {

namespace fs = std::filesystem;

const fs::path kProbes = fs::path(PACS_SOURCE_DIR) / "probes";

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The body of "## <heading>..." up to the next "## " heading.
std::optional<std::string> section(const std::string& text, const std::string& heading) {
  std::regex re("(^|\\n)## " + heading + "[^\\n]*\\n");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return std::nullopt;
  size_t start = static_cast<size_t>(m.position(0) + m.length(0));
  size_t end = text.find("\n## ", start);
  return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// Backticked names in the first column of the markdown tables of `body`.
std::set<std::string> first_column(const std::string& body) {
  std::set<std::string> out;
  std::istringstream in(body);
  std::string line;
  std::regex cell("^\\|\\s*`([a-z_0-9]+)`");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, cell)) out.insert(m[1]);
  }
  return out;
}

class KindLibraries : public ::testing::Environment {
 public:
  void SetUp() override { initialize_kinds(log_); }
  void TearDown() override { shutdown_kinds(); }

 private:
  Logger log_{LogLevel::error};
};
const auto* const kLibraries = ::testing::AddGlobalTestEnvironment(new KindLibraries);

TEST(Registry, FoldersAreExactlyTheRegisteredKinds) {
  std::set<std::string> folders, registered;
  for (const auto& e : fs::directory_iterator(kProbes))
    if (e.is_directory() && e.path().filename() != "lib") folders.insert(e.path().filename());
  for (const Kind* k : kinds()) {
    EXPECT_TRUE(registered.insert(std::string(k->name)).second) << "registered twice: " << k->name;
  }
  EXPECT_EQ(folders, registered) << "every folder under probes/ (but lib/) is a kind with one line in "
                                    "probes/registry.cpp, and every line names a folder";
  for (const Kind* k : kinds()) EXPECT_EQ(find_kind(k->name), k);
}

TEST(Registry, DescriptorsAreComplete) {
  std::set<std::string> labels;
  for (const Kind* k : kinds()) {
    SCOPED_TRACE(std::string(k->name));
    EXPECT_TRUE(std::regex_match(std::string(k->name), std::regex("[a-z][a-z0-9_]*")));
    EXPECT_FALSE(k->summary.empty());
    EXPECT_NE(k->parse, nullptr);
    ASSERT_FALSE(k->checks.empty());
    for (const auto& c : k->checks) {
      EXPECT_FALSE(c.check.empty());
      EXPECT_TRUE(labels.insert(std::string(c.probe)).second) << "probe label used twice: " << c.probe;
      EXPECT_EQ(k->find_check(c.check), &c);
      for (Reason r : c.reasons) {
        EXPECT_NE(r, Reason::none);
        EXPECT_NE(r, Reason::internal) << "internal is implied for every check; do not list it";
      }
    }
  }
}

TEST(Registry, EveryKindHasReadmeSectionsSampleAndGoldenFixture) {
  for (const Kind* k : kinds()) {
    SCOPED_TRACE(std::string(k->name));
    fs::path dir = kProbes / std::string(k->name);
    std::string readme = read(dir / "README.md");
    ASSERT_FALSE(readme.empty()) << dir / "README.md";
    EXPECT_EQ(readme.rfind("# " + std::string(k->name) + " — ", 0), 0u)
        << "README.md starts with \"# <kind> — <what it watches>\"";
    for (const char* s : {"Metrics", "Reasons", "Config"}) {
      EXPECT_TRUE(section(readme, s)) << "README.md has no \"## " << s << "\" section";
    }
    // The reasons the README documents are exactly those the checks declare.
    if (auto body = section(readme, "Reasons")) {
      std::set<std::string> documented = first_column(*body), declared;
      documented.erase("internal");
      for (const auto& c : k->checks)
        for (Reason r : c.reasons) declared.insert(std::string(to_string(r)));
      EXPECT_EQ(documented, declared) << "README \"## Reasons\" vs the descriptor's checks";
    }
    if (auto body = section(readme, "Metrics")) {
      EXPECT_FALSE(first_column(*body).empty()) << "\"## Metrics\" lists no metric in a table";
    }
    EXPECT_TRUE(fs::exists(dir / "tests" / "golden_fixture.cpp"))
        << "no tests/golden_fixture.cpp (see tests/support/golden.h)";
    EXPECT_TRUE(fs::exists(dir / "CMakeLists.txt"));
  }
}

TEST(Registry, EverySampleTomlParses) {
  for (const Kind* k : kinds()) {
    fs::path sample = kProbes / std::string(k->name) / "sample.toml";
    SCOPED_TRACE(sample.string());
    std::string text = read(sample);
    ASSERT_FALSE(text.empty()) << "missing or empty";
    std::shared_ptr<const Config> cfg;
    try {
      cfg = parse_config(text, sample.string());
    } catch (const std::exception& e) {
      FAIL() << e.what();
    }
    bool has_own = std::any_of(cfg->targets.begin(), cfg->targets.end(),
                               [&](const Config::Target& t) { return t.kind == k->name; });
    EXPECT_TRUE(has_own) << "sample.toml configures no [[" << k->name << "]] target";
  }
}

TEST(Registry, EveryReasonIsProducedByACheckAndDocumented) {
  std::set<Reason> produced{Reason::internal};
  for (const Kind* k : kinds())
    for (const auto& c : k->checks) produced.insert(c.reasons.begin(), c.reasons.end());
  std::string metrics_md = read(fs::path(PACS_SOURCE_DIR) / "docs" / "metrics.md");
  auto table = section(metrics_md, "Failure reasons");
  ASSERT_TRUE(table) << "docs/metrics.md has no \"## Failure reasons\" section";
  std::set<std::string> documented = first_column(*table);
  for (Reason r : all_failure_reasons()) {
    EXPECT_TRUE(produced.count(r)) << to_string(r) << ": no check declares it (remove it or declare it)";
    EXPECT_TRUE(documented.count(std::string(to_string(r)))) << to_string(r) << " is not in docs/metrics.md";
  }
}

}  // namespace
}  // namespace pacs
