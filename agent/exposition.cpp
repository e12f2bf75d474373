#include "agent/exposition.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

namespace pacs::exposition {

void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    std::array<char, 32> buf;
    auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
    out.append(buf.data(), r.ptr);
  }
}

void append_uint(std::string& out, std::uint64_t v) {
  std::array<char, 24> buf;
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

void append_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void append_header(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

namespace {
// One raw-deflate compressor per thread and level, reset between parts
// (deflateInit2 allocates ~256 KiB; a reset only clears the hash table).
// Small texts (the live tail, HELP/TYPE pieces) get a 4 KiB window and a
// small hash table: a reset clears 4 KiB instead of 64 KiB.
constexpr size_t kSmall = 4096;

class Deflater {
 public:
  Deflater(int level, bool small) : level_(level), small_(small) {
    // Raw deflate (negative window bits): no zlib/gzip framing, gzip_join adds it.
    if (deflateInit2(&zs_, level, Z_DEFLATED, small ? -12 : -15, small ? 4 : 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      throw std::runtime_error("deflateInit2 failed");
    }
  }
  ~Deflater() { deflateEnd(&zs_); }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  bool is(int level, bool small) const { return level_ == level && small_ == small; }
  z_stream& reset() {
    deflateReset(&zs_);
    return zs_;
  }

 private:
  int level_;
  bool small_;
  z_stream zs_{};
};

z_stream& deflater(int level, size_t size) {
  thread_local std::vector<std::unique_ptr<Deflater>> kept;
  bool small = size <= kSmall;
  for (auto& d : kept)
    if (d->is(level, small)) return d->reset();
  kept.push_back(std::make_unique<Deflater>(level, small));
  return kept.back()->reset();
}
}  // namespace

DeflatedPart deflate_part(std::string_view text, int level) {
  DeflatedPart p;
  p.size = text.size();
  p.crc = static_cast<std::uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(text.data()), static_cast<uInt>(text.size())));
  if (text.empty()) return p;  // contributes nothing; a sync marker would be harmless but useless
  z_stream& zs = deflater(level, text.size());
  // deflateBound assumes Z_FINISH; a sync flush adds at most an empty stored block.
  p.bytes.resize(deflateBound(&zs, static_cast<uLong>(text.size())) + 16);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  size_t produced = 0;
  int rc = Z_OK;
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(p.bytes.data() + produced);
    zs.avail_out = static_cast<uInt>(p.bytes.size() - produced);
    rc = deflate(&zs, Z_SYNC_FLUSH);
    produced = p.bytes.size() - zs.avail_out;
    // Done when all input is consumed and the flush completed (room left over).
    if (rc != Z_OK || (zs.avail_in == 0 && zs.avail_out != 0)) break;
    p.bytes.resize(p.bytes.size() * 2);
  }
  if (rc != Z_OK) throw std::runtime_error("deflate failed");
  p.bytes.resize(produced);
  return p;
}

void append_part(DeflatedPart& into, const DeflatedPart& part) {
  into.bytes += part.bytes;
  into.crc = static_cast<std::uint32_t>(crc32_combine(into.crc, part.crc, static_cast<z_off_t>(part.size)));
  into.size += part.size;
}

std::string gzip_join(std::initializer_list<const DeflatedPart*> parts) {
  // RFC 1952 header: magic, CM=deflate, no flags, MTIME=0, XFL=0, OS=3 (Unix).
  static constexpr unsigned char kHeader[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  // An empty final block with fixed Huffman codes: BFINAL=1, BTYPE=01, end-of-block.
  static constexpr unsigned char kFinal[2] = {0x03, 0x00};
  size_t total = sizeof kHeader + sizeof kFinal + 8;
  for (const auto* p : parts) total += p->bytes.size();
  std::string out;
  out.reserve(total);
  out.append(reinterpret_cast<const char*>(kHeader), sizeof kHeader);
  uLong crc = crc32(0, nullptr, 0);
  std::uint64_t size = 0;
  for (const auto* p : parts) {
    out += p->bytes;
    crc = crc32_combine(crc, p->crc, static_cast<z_off_t>(p->size));
    size += p->size;
  }
  out.append(reinterpret_cast<const char*>(kFinal), sizeof kFinal);
  auto put32 = [&out](std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  put32(static_cast<std::uint32_t>(crc));
  put32(static_cast<std::uint32_t>(size & 0xffffffffu));  // ISIZE: length modulo 2^32
  return out;
}

namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}
// The q-value of one "coding;q=0.5" element: 1 when absent or unreadable.
double qvalue(std::string_view params) {
  while (!params.empty()) {
    auto semi = params.find(';');
    auto p = trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view{} : params.substr(semi + 1);
    if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
      auto v = p.substr(2);
      double q = 1;
      auto r = std::from_chars(v.data(), v.data() + v.size(), q);
      return r.ec == std::errc() ? q : 1;
    }
  }
  return 1;
}
}  // namespace

bool accepts_gzip(std::string_view header) {
  int gzip = -1, star = -1;  // -1 not named, 0 refused, 1 accepted
  while (!header.empty()) {
    auto comma = header.find(',');
    auto elem = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    auto semi = elem.find(';');
    auto name = trim(elem.substr(0, semi));
    double q = semi == std::string_view::npos ? 1 : qvalue(elem.substr(semi + 1));
    int verdict = q > 0 ? 1 : 0;
    if (iequals(name, "gzip") || iequals(name, "x-gzip")) gzip = std::max(gzip, verdict);
    else if (name == "*") star = std::max(star, verdict);
  }
  if (gzip >= 0) return gzip == 1;
  return star == 1;
}

}  // namespace pacs::exposition
