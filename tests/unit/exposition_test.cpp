// The /metrics text as ResultStore renders it (cached per change) and the
// gzip assembled from separately deflated parts: valid, complete, identical
// to what prometheus-cpp serialises from Collect(), and really reused while
// nothing changes. Decoded by zlib and by GNU gzip (an independent inflater).
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "agent/exposition.h"
#include "agent/result_store.h"
#include "tests/support/support.h"

namespace pacs {
namespace {

namespace X = exposition;

std::string gunzip(const std::string& z) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(z.data()));
  zs.avail_in = static_cast<uInt>(z.size());
  std::string out;
  char buf[65536];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
  } while (rc == Z_OK);
  EXPECT_EQ(rc, Z_STREAM_END) << "not one complete gzip member";
  EXPECT_EQ(zs.avail_in, 0u) << "bytes after the gzip member";
  inflateEnd(&zs);
  return out;
}

std::string gnu_gunzip(const std::string& z) {
  test::TempDir dir;
  auto in = dir / "body.gz";
  {
    std::ofstream f(in, std::ios::binary);
    f << z;
  }
  std::string out;
  int rc = test::run_command({"gzip", "-t", in.string()}, &out);
  EXPECT_EQ(rc, 0) << "gzip -t: " << out;
  rc = test::run_command({"gzip", "-d", in.string()}, &out);
  EXPECT_EQ(rc, 0) << out;
  std::ifstream f(dir / "body", std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(Exposition, GzipFromPartsDecodesToTheConcatenation) {
  std::mt19937 rng(7);
  std::string big;
  for (int i = 0; i < 20000; ++i) big += "pacs_probe_success{probe=\"dicom_echo\",target=\"ae-" + std::to_string(rng() % 997) + "\"} 1\n";
  std::string random_bytes;
  for (int i = 0; i < 100000; ++i) random_bytes += static_cast<char>(rng());  // incompressible: stored blocks
  const std::vector<std::string> texts = {"", "x\n", big, random_bytes, "# tail\nprocess_open_fds 7\n"};
  // Every ordered pair and the whole sequence.
  for (size_t i = 0; i < texts.size(); ++i) {
    for (size_t j = 0; j < texts.size(); ++j) {
      auto a = X::deflate_part(texts[i]), b = X::deflate_part(texts[j]);
      EXPECT_EQ(gunzip(X::gzip_join({&a, &b})), texts[i] + texts[j]) << i << "," << j;
    }
  }
  std::vector<X::DeflatedPart> parts;
  std::string all;
  for (const auto& t : texts) {
    parts.push_back(X::deflate_part(t, 6));
    all += t;
  }
  auto z = X::gzip_join({&parts[0], &parts[1], &parts[2], &parts[3], &parts[4]});
  EXPECT_EQ(gunzip(z), all);
  PACS_REQUIRE_PEER("gzip");
  EXPECT_EQ(gnu_gunzip(z), all) << "GNU gzip reads it differently";
  EXPECT_LT(X::deflate_part(big).bytes.size(), big.size() / 5) << "level 1 should still compress exposition text";
}

TEST(Exposition, AcceptEncoding) {
  EXPECT_TRUE(X::accepts_gzip("gzip"));
  EXPECT_TRUE(X::accepts_gzip("gzip, deflate, br"));
  EXPECT_TRUE(X::accepts_gzip("deflate, GZIP;q=0.5"));
  EXPECT_TRUE(X::accepts_gzip("x-gzip"));
  EXPECT_TRUE(X::accepts_gzip("*"));
  EXPECT_TRUE(X::accepts_gzip("identity;q=1, gzip ; q=0.001"));
  EXPECT_FALSE(X::accepts_gzip(""));
  EXPECT_FALSE(X::accepts_gzip("identity"));
  EXPECT_FALSE(X::accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(X::accepts_gzip("gzip;q=0.0, *"));
  EXPECT_FALSE(X::accepts_gzip("*;q=0"));
  EXPECT_FALSE(X::accepts_gzip("br, deflate"));
  EXPECT_FALSE(X::accepts_gzip("gzipper"));
}

TEST(Exposition, ValuesReadBackExactly) {
  for (double v : {0.0, 1.0, -2.5, 0.1, 1e-05, 1712345678.123456, 123456789012.0, 0.0012, 1.0 / 3.0}) {
    std::string s;
    X::append_value(s, v);
    EXPECT_EQ(std::stod(s), v) << s;
  }
  std::string s;
  X::append_value(s, std::numeric_limits<double>::infinity());
  s += ' ';
  X::append_value(s, -std::numeric_limits<double>::infinity());
  s += ' ';
  X::append_value(s, std::nan(""));
  EXPECT_EQ(s, "+Inf -Inf NaN");
  std::string l;
  X::append_label_value(l, "a\"b\\c\nd");
  EXPECT_EQ(l, "a\\\"b\\\\c\\nd");
}

// ---- ResultStore rendering -------------------------------------------------

ProbeSpec spec(const std::string& probe, const std::string& target, std::vector<Reason> reasons) {
  ProbeSpec p;
  p.probe = probe;
  p.target = target;
  p.interval = std::chrono::seconds(15);
  p.timeout = std::chrono::seconds(5);
  p.reasons = std::move(reasons);
  p.fingerprint = "v1";
  return p;
}

// name{labels} -> value, with labels sorted (a canonical form both
// serialisers can be compared in); also checks the text's structure.
std::map<std::string, double> parse(const std::string& text) {
  std::map<std::string, double> out;
  std::set<std::string> finished_families, typed;
  std::string current;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(typed.insert(name).second) << "TYPE twice for " << name;
      if (!current.empty()) finished_families.insert(current);
      EXPECT_FALSE(finished_families.count(name)) << name << " is split";
      current = name;
      continue;
    }
    if (line[0] == '#') continue;
    auto brace = line.find('{');
    auto space = line.rfind(' ');
    std::string name = line.substr(0, std::min(brace, space));
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s = suffix;
      if (!typed.count(family) && family.size() > s.size() && family.compare(family.size() - s.size(), s.size(), s) == 0) {
        family.resize(family.size() - s.size());
      }
    }
    EXPECT_EQ(family, current) << "series outside its family: " << line;
    std::vector<std::string> labels;
    if (brace != std::string::npos) {
      std::string body = line.substr(brace + 1, line.rfind('}') - brace - 1);
      std::string cur;
      bool quoted = false;
      for (size_t i = 0; i < body.size(); ++i) {
        char c = body[i];
        if (c == '\\' && quoted) {
          cur += c;
          cur += body[++i];
          continue;
        }
        if (c == '"') quoted = !quoted;
        if (c == ',' && !quoted) {
          if (!cur.empty()) labels.push_back(cur);
          cur.clear();
          continue;
        }
        cur += c;
      }
      if (!cur.empty()) labels.push_back(cur);
    }
    std::sort(labels.begin(), labels.end());
    std::string key = name + "{";
    for (const auto& l : labels) key += l + ",";
    key += "}";
    std::string v = line.substr(space + 1);
    double value = v == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(v);
    EXPECT_TRUE(out.emplace(key, value).second) << "duplicate series " << key;
  }
  return out;
}

struct Filled {
  ResultStore store;
  std::vector<ProbeSpec> specs;
  Filled() {
    specs = {spec("dicom_echo", "ct-1", {Reason::connection_refused, Reason::dimse_timeout}),
             spec("filesystem", "store", {Reason::io_error}),
             spec("dicom_echo", "ct-2", {Reason::connection_refused}),
             spec("queue_directory", "never-ran", {Reason::io_error})};
    store.set_probes(specs);
    auto now = std::chrono::system_clock::now();
    ProbeResult echo = ProbeResult::ok();
    echo.add("pacs_dicom_phase_duration_seconds", "Phase time.", 0.001, {{"phase", "connect"}});
    echo.add("pacs_dicom_phase_duration_seconds", "Phase time.", 0.002, {{"phase", "associate"}});
    echo.add("pacs_dicom_dimse_status", "DIMSE status.", 0);
    store.record(specs[0], {echo, 0.004, now});
    ProbeResult fs = ProbeResult::ok();
    fs.add("pacs_filesystem_avail_bytes", "Avail.", 1e12, {{"path", "/mnt/a \"quoted\" \\ dir"}});
    fs.add_counter("pacs_archive_received_instances_total", "A total the kind keeps.", 42);
    store.record(specs[1], {fs, 0.0001, now});
    store.record(specs[2], {ProbeResult::fail(Reason::connection_refused, "refused"), 0.3, now});
    ProbeResult echo2 = ProbeResult::ok();
    echo2.add("pacs_dicom_phase_duration_seconds", "Phase time.", 0.5, {{"phase", "connect"}});
    store.record(specs[2], {echo2, 2.0, now});
    store.record_skip(specs[2]);
  }
};

TEST(ResultStoreText, SameSeriesAsCollectAndFamiliesContiguous) {
  Filled f;
  std::ostringstream os;
  prometheus::TextSerializer().Serialize(os, f.store.Collect());
  auto reference = parse(os.str());
  auto text = f.store.text();
  auto ours = parse(*text);
  // Same series; same values up to prometheus-cpp's printing precision
  // (16 significant digits, ours is the shortest exact text).
  ASSERT_EQ(ours.size(), reference.size()) << *text;
  for (const auto& [key, value] : reference) {
    auto it = ours.find(key);
    ASSERT_NE(it, ours.end()) << key << " missing in\n" << *text;
    EXPECT_NEAR(it->second, value, std::abs(value) * 1e-15) << key;
  }
  // Same TYPE for every family: a kind's own counter is a counter, not a gauge.
  auto types = [](const std::string& t) {
    std::set<std::string> out;
    std::istringstream in(t);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("# TYPE ", 0) == 0) out.insert(line);
    return out;
  };
  EXPECT_EQ(types(*text), types(os.str()));
  EXPECT_NE(text->find("# TYPE pacs_archive_received_instances_total counter\n"), std::string::npos) << *text;
  // Spot checks of the rendering itself.
  EXPECT_NE(text->find("pacs_probe_run_duration_seconds_bucket{probe=\"dicom_echo\",target=\"ct-2\",le=\"0.5\"} 1\n"),
            std::string::npos)
      << *text;
  EXPECT_NE(text->find("pacs_probe_run_duration_seconds_bucket{probe=\"dicom_echo\",target=\"ct-2\",le=\"+Inf\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text->find("path=\"/mnt/a \\\"quoted\\\" \\\\ dir\""), std::string::npos) << *text;
  EXPECT_NE(text->find("pacs_probe_skipped_runs_total{probe=\"dicom_echo\",target=\"ct-2\"} 1\n"), std::string::npos);
  EXPECT_EQ(text->find("pacs_probe_success{probe=\"queue_directory\""), std::string::npos) << "success before a run";
}

TEST(ResultStoreText, CachedUntilAChangeAndGzipMatches) {
  Filled f;
  auto t1 = f.store.text();
  auto z1 = f.store.deflated();
  EXPECT_EQ(f.store.text().get(), t1.get()) << "unchanged store rendered again";
  EXPECT_EQ(f.store.deflated().get(), z1.get()) << "unchanged store compressed again";
  std::string live = "# HELP process_open_fds Fds.\n# TYPE process_open_fds gauge\nprocess_open_fds 9\n";
  auto tail = X::deflate_part(live);
  EXPECT_EQ(gunzip(X::gzip_join({z1.get(), &tail})), *t1 + live);

  auto gen = f.store.generation();
  f.store.record(f.specs[1], {ProbeResult::fail(Reason::io_error, "gone"), 0.01, std::chrono::system_clock::now()});
  EXPECT_GT(f.store.generation(), gen);
  auto t2 = f.store.text();
  EXPECT_NE(t2.get(), t1.get());
  EXPECT_NE(t2->find("pacs_probe_failures_total{probe=\"filesystem\",target=\"store\",reason=\"io_error\"} 1\n"),
            std::string::npos);
  EXPECT_EQ(t2->find("pacs_filesystem_avail_bytes"), std::string::npos) << "a failed run's samples replace the old ones";
  auto z2 = f.store.deflated();
  EXPECT_NE(z2.get(), z1.get());
  EXPECT_EQ(gunzip(X::gzip_join({z2.get(), &tail})), *t2 + live);

  // A result for a probe no longer tracked changes nothing.
  auto stale = f.specs[1];
  stale.fingerprint = "old";
  gen = f.store.generation();
  f.store.record(stale, {ProbeResult::ok(), 0.01, std::chrono::system_clock::now()});
  EXPECT_EQ(f.store.generation(), gen);
  EXPECT_EQ(f.store.text().get(), t2.get());

  // set_probes drops a target's lines at once.
  f.store.set_probes({f.specs[0]});
  auto t3 = f.store.text();
  EXPECT_EQ(t3->find("target=\"store\""), std::string::npos);
  EXPECT_NE(t3->find("target=\"ct-1\""), std::string::npos);
  f.store.set_probes({});
  EXPECT_EQ(*f.store.text(), "");
  auto empty = f.store.deflated();
  EXPECT_EQ(gunzip(X::gzip_join({empty.get(), &tail})), live);
}

TEST(ResultStoreText, ChunkedDeflateMatchesTheTextThroughChanges) {
  // Several chunk groups; families that appear and vanish (reject details
  // only after a failure); most chunks unchanged between two calls, so the
  // reused deflated chunks and the fresh ones must join up exactly.
  ResultStore store;
  std::vector<ProbeSpec> specs;
  for (size_t i = 0; i < 3 * ResultStore::kChunkProbes + 17; ++i) {
    specs.push_back(spec(i % 3 ? "dicom_echo" : "filesystem", "t" + std::to_string(i),
                         {Reason::connection_refused, Reason::association_rejected}));
  }
  store.set_probes(specs);
  std::mt19937 rng(42);
  auto empty = X::deflate_part("");
  for (int round = 0; round < 40; ++round) {
    for (int k = 0; k < (round % 5 == 0 ? 200 : 3); ++k) {
      const auto& s = specs[rng() % specs.size()];
      ProbeResult r;
      switch (rng() % 3) {
        case 0:
          r = ProbeResult::ok();
          r.add("pacs_dicom_phase_duration_seconds", "Phase time.", (rng() % 1000) / 1e4, {{"phase", "connect"}});
          break;
        case 1:
          r = ProbeResult::fail(Reason::association_rejected, "rejected");
          r.add("pacs_dicom_association_reject_reason", "Reject reason.", 7);
          break;
        default:
          r = ProbeResult::fail(Reason::connection_refused, "refused");
      }
      store.record(s, {r, (rng() % 3000) / 1e3, std::chrono::system_clock::now()});
    }
    if (round % 7 == 3) store.record_skip(specs[rng() % specs.size()]);
    if (round == 20) {  // a reload that drops a third of the probes
      specs.erase(specs.begin() + 50, specs.begin() + 180);
      store.set_probes(specs);
    }
    auto z = store.deflated();
    ASSERT_EQ(gunzip(X::gzip_join({z.get(), &empty})), *store.text()) << "round " << round;
  }
}

TEST(ResultStoreText, ConcurrentScrapesAndRecordsStayConsistent) {
  Filled f;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    int i = 0;
    while (!stop) {
      ProbeResult r = ProbeResult::ok();
      r.add("pacs_dicom_phase_duration_seconds", "Phase time.", i * 0.001, {{"phase", "connect"}});
      f.store.record(f.specs[i % 3], {r, 0.001 * (i % 50), std::chrono::system_clock::now()});
      ++i;
    }
  });
  for (int i = 0; i < 300; ++i) {
    auto z = f.store.deflated();
    auto t = f.store.text();
    auto x = X::deflate_part("");
    std::string plain = gunzip(X::gzip_join({z.get(), &x}));
    parse(plain);  // structure holds in every state
    parse(*t);
  }
  stop = true;
  writer.join();
}

}  // namespace
}  // namespace pacs
