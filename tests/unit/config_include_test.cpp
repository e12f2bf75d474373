// [agent] include: target sections in other files (conf.d/*.toml), as a
// fleet's configuration management templates them. Errors name the included
// file and line; duplicate names name both places.
#include <gtest/gtest.h>

#include <filesystem>

#include "agent/config.h"
#include "probes/config_table.h"
#include "probes/kind.h"
#include "probes/registry.h"
#include "tests/support/support.h"

namespace pacs {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string fs_target(const std::string& name, const TempDir& dir) {
  return "[[filesystem]]\nname = \"" + name + "\"\npath = \"" + dir.path().string() + "\"\n";
}

std::vector<std::string> target_names(const Config& c) {
  std::vector<std::string> out;
  for (const auto& t : c.targets) out.push_back(t.name);
  return out;
}

std::string load_error(const fs::path& main) {
  try {
    load_config_file(main.string());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(ConfigInclude, GlobsRelativeToTheMainFileSortedAfterItsOwnTargets) {
  TempDir dir;
  auto main = dir.write("etc/pacs-agent.toml", "[agent]\ninclude = [\"conf.d/*.toml\", \"extra.toml\"]\n\n" +
                                                  fs_target("main-1", dir));
  dir.write("etc/conf.d/20-mr.toml", fs_target("mr", dir));
  dir.write("etc/conf.d/10-ct.toml", fs_target("ct", dir) + "\n" + fs_target("ct-2", dir));
  dir.write("etc/conf.d/README", "not toml, not matched");
  fs::create_directories(dir / "etc/conf.d/old.toml");  // a directory matched by the glob: skipped
  dir.write("etc/extra.toml", fs_target("extra", dir));
  auto cfg = load_config_file(main.string());
  EXPECT_EQ(target_names(*cfg), (std::vector<std::string>{"main-1", "ct", "ct-2", "mr", "extra"}));
  EXPECT_EQ(cfg->included_files, (std::vector<std::string>{(dir / "etc/conf.d/10-ct.toml").string(),
                                                           (dir / "etc/conf.d/20-mr.toml").string(),
                                                           (dir / "etc/extra.toml").string()}));
  EXPECT_EQ(cfg->probes.size(), 5u);
}

TEST(ConfigInclude, EmptyGlobIsFineAMissingNamedFileIsNot) {
  TempDir dir;
  auto main = dir.write("a.toml", "[agent]\ninclude = [\"conf.d/*.toml\"]\n" + fs_target("x", dir));
  EXPECT_EQ(target_names(*load_config_file(main.string())), std::vector<std::string>{"x"});
  auto named = dir.write("b.toml", "[agent]\ninterval = \"15s\"\ninclude = [\"targets.toml\"]\n");
  EXPECT_EQ(load_error(named), named.string() + ":3: agent.include: \"targets.toml\": no such file (" +
                                   (dir / "targets.toml").string() + ")");
  auto not_array = dir.write("c.toml", "[agent]\ninclude = \"conf.d/*.toml\"\n");
  EXPECT_EQ(load_error(not_array), not_array.string() + ":2: agent.include: must be an array of strings");
}

TEST(ConfigInclude, ErrorsNameTheIncludedFileAndLine) {
  TempDir dir;
  auto main = dir.write("main.toml", "[agent]\ninclude = [\"conf.d/*.toml\"]\n");
  auto ok = dir.write("conf.d/1.toml", fs_target("fine", dir));
  (void)ok;
  auto bad = dir.write("conf.d/2.toml", "\n[[dicom]]\nname = \"ct\"\nhost = \"127.0.0.1\"\nport = 0\n");
  EXPECT_EQ(load_error(main), bad.string() + ":5: dicom[0].port: must be 1..65535");

  dir.write("conf.d/2.toml", "[[dicom]]\nname = \"ct\"\nhost = \n");
  EXPECT_EQ(load_error(main).rfind(bad.string() + ":3: syntax error: ", 0), 0u) << load_error(main);

  dir.write("conf.d/2.toml", fs_target("y", dir) + "\n[agent]\ninterval = \"5s\"\n");
  EXPECT_EQ(load_error(main), bad.string() + ":5: agent: not allowed in an included file (included files hold "
                                             "only target sections such as [[dicom]]; [agent] and [web] belong in "
                                             "the main file)");
  dir.write("conf.d/2.toml", "[web]\nlisten_address = \"127.0.0.1:1\"\n");
  EXPECT_EQ(load_error(main).rfind(bad.string() + ":1: web: not allowed in an included file", 0), 0u)
      << load_error(main);
  dir.write("conf.d/2.toml", "[[dicomm]]\nname = \"x\"\n");
  std::string known;  // in an included file only the kinds' sections: no agent, no web
  for (const Kind* k : kinds()) known += (known.empty() ? "" : ", ") + std::string(k->name);
  EXPECT_EQ(load_error(main), bad.string() + ":1: dicomm: unknown section or top-level key (known: " + known + ")");
  EXPECT_NE(known.find("dicom, "), std::string::npos) << known;
  dir.write("conf.d/2.toml", "[[filesystem]]\nname = \"z\"\npath = \"/\"\ncolour = 1\n");
  EXPECT_EQ(load_error(main), bad.string() + ":4: filesystem[0].colour: unknown key");
}

TEST(ConfigInclude, DuplicateNamesAcrossFilesNameBothPlaces) {
  TempDir dir;
  auto main = dir.write("main.toml", "[agent]\ninclude = [\"conf.d/*.toml\"]\n\n" + fs_target("archive", dir));
  auto other = dir.write("conf.d/x.toml", "\n\n" + fs_target("archive", dir));
  EXPECT_EQ(load_error(main), other.string() + ":4: filesystem[0].name: duplicate target name \"archive\" (first "
                                               "defined at " + main.string() + ":5)");
  // Within one included file too, and between two included files.
  fs::remove(other);
  auto a = dir.write("conf.d/a.toml", fs_target("ct", dir));
  auto b = dir.write("conf.d/b.toml", fs_target("ct", dir));
  EXPECT_EQ(load_error(main),
            b.string() + ":2: filesystem[0].name: duplicate target name \"ct\" (first defined at " + a.string() + ":2)");
}

TEST(ConfigInclude, TheMainFileAndRepeatedMatchesAreReadOnce) {
  TempDir dir;
  auto main = dir.write("all.toml", "[agent]\ninclude = [\"*.toml\", \"t.toml\", \"./t.toml\"]\n");
  dir.write("t.toml", fs_target("t", dir));
  auto cfg = load_config_file(main.string());
  EXPECT_EQ(target_names(*cfg), std::vector<std::string>{"t"});
  EXPECT_EQ(cfg->included_files.size(), 1u);
}

TEST(ConfigInclude, AbsolutePatternsAndUnreadableFiles) {
  TempDir dir, elsewhere;
  auto abs = elsewhere.write("x.toml", fs_target("far", dir));
  auto main = dir.write("m.toml", "[agent]\ninclude = [\"" + abs.string() + "\"]\n");
  EXPECT_EQ(target_names(*load_config_file(main.string())), std::vector<std::string>{"far"});
  fs::permissions(abs, fs::perms::none);
  std::string err = test::run_as_nobody([&] { return load_error(main); });
  fs::permissions(abs, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(err, main.string() + ":2: agent.include: " + abs.string() + ": cannot open: Permission denied");
}

TEST(ConfigInclude, AddingAnIncludeKeepsEveryProbesIdentity) {
  // The fingerprint covers [agent] (it shapes every probe) but not `include`:
  // adding a file to conf.d must not reset the counters of running probes.
  TempDir dir;
  auto a = parse_config("[agent]\ninterval = \"15s\"\n" + fs_target("x", dir), (dir / "m.toml").string());
  dir.write("conf.d/y.toml", fs_target("y", dir));
  auto b = parse_config("[agent]\ninterval = \"15s\"\ninclude = [\"conf.d/*.toml\"]\n" + fs_target("x", dir),
                        (dir / "m.toml").string());
  ASSERT_EQ(b->probes.size(), 2u);
  EXPECT_TRUE(same_probe(a->probes[0], b->probes[0]));
  auto c = parse_config("[agent]\ninterval = \"20s\"\n" + fs_target("x", dir), (dir / "m.toml").string());
  EXPECT_FALSE(same_probe(a->probes[0], c->probes[0])) << "other [agent] keys still shape every probe";
}

}  // namespace
}  // namespace pacs
