// Prometheus text exposition written straight into a string, and gzip
// assembled from parts that were deflated independently.
//
// Why parts: /metrics is mostly the probe results, which change only when a
// probe finishes, plus a few live lines (process and HTTP counters). The
// results are deflated once per change and reused by every scrape; each
// scrape deflates only its few live lines and joins the two. A part is a raw
// deflate stream flushed to a byte boundary without a final block
// (Z_SYNC_FLUSH), so parts deflated with fresh compressors can follow each
// other; gzip_join() adds the gzip header, one empty final block and the
// trailer (the CRC-32 of the whole text, combined from the parts' CRCs, and
// its length). The result is one ordinary gzip member that every decoder
// reads (the same construction pigz uses for parallel compression).
//
// Thread-safety: free functions; deflate_part keeps one compressor per thread
// (thread_local), nothing shared.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace pacs::exposition {

// Content-Type of the text format (version 0.0.4), for /metrics and /probe.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Appends `v` the way Prometheus parses it: shortest text that reads back as
// the same double ("0.25", "1712345678.5", "1e-05"), "+Inf", "-Inf", "NaN".
void append_value(std::string& out, double v);
void append_uint(std::string& out, std::uint64_t v);
// Appends a label value with \\, \" and \n escaped.
void append_label_value(std::string& out, std::string_view v);
// "# HELP name help\n# TYPE name type\n" (help with \\ and \n escaped).
void append_header(std::string& out, std::string_view name, std::string_view help, std::string_view type);

struct DeflatedPart {
  std::string bytes;        // raw deflate blocks, byte aligned, none final
  std::uint32_t crc = 0;    // CRC-32 of the text
  std::uint64_t size = 0;   // length of the text
};

// zlib level used for /metrics: the fastest. Probe results are repetitive
// text (labels repeat on every line), so level 1 still shrinks them about
// 15x, in a third of the time of the default level.
inline constexpr int kLevel = 1;

DeflatedPart deflate_part(std::string_view text, int level = kLevel);
// Appends `part` to `into`: the result holds both texts, in order.
void append_part(DeflatedPart& into, const DeflatedPart& part);
// One gzip member holding the parts' texts in order.
std::string gzip_join(std::initializer_list<const DeflatedPart*> parts);

// True when an Accept-Encoding header value accepts gzip (RFC 9110: "gzip"
// or "x-gzip" or "*", with a q-value above 0; an explicit gzip;q=0 wins).
bool accepts_gzip(std::string_view accept_encoding);

}  // namespace pacs::exposition
