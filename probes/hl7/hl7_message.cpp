// HL7 v2 message building, MLLP framing and acknowledgement parsing.
#include <cstdio>
#include <random>

#include "probes/hl7/hl7.h"

namespace pacs::hl7 {

namespace {

constexpr char kStart = 0x0b;  // MLLP start block (VT)
constexpr char kEnd = 0x1c;    // MLLP end block (FS), followed by CR

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (auto p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

// "ADT^A08^ADT_A01" -> "A08"; "" when there is no trigger event.
std::string trigger_event(const std::string& type) {
  auto a = type.find('^');
  if (a == std::string::npos) return {};
  auto b = type.find('^', a + 1);
  return type.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    auto p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) return out;
    start = p + 1;
  }
}

}  // namespace

const std::vector<std::string>& ack_codes() {
  static const std::vector<std::string> codes = {"AA", "AE", "AR", "CA", "CE", "CR"};
  return codes;
}

std::vector<std::string> default_segments(const Options& o) {
  if (o.message_type.rfind("ADT^", 0) != 0) return {};
  return {
      "EVN|" + trigger_event(o.message_type) + "|{now}",
      "PID|1||" + o.patient_id + "^^^" + o.sending_application + "||" + o.patient_name,
      "PV1|1|N",  // patient class N: not applicable (no encounter)
  };
}

std::string build_message(const Options& o, std::string_view control_id, std::string_view timestamp) {
  std::string m = "MSH|^~\\&|" + o.sending_application + "|" + o.sending_facility + "|" + o.receiving_application +
                  "|" + o.receiving_facility + "|" + std::string(timestamp) + "||" + o.message_type + "|" +
                  std::string(control_id) + "|" + o.processing_id + "|" + o.version;
  for (const auto& seg : o.segments.empty() ? default_segments(o) : o.segments) {
    m += '\r';
    m += replace_all(seg, "{now}", timestamp);
  }
  m += '\r';
  return m;
}

std::string new_control_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[24];
  std::snprintf(buf, sizeof buf, "PA%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

std::string mllp_frame(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 3);
  out += kStart;
  out += payload;
  out += kEnd;
  out += '\r';
  return out;
}

Frame read_frame(std::string_view in, std::size_t max_bytes) {
  Frame f;
  if (in.empty()) return f;
  if (in[0] != kStart) {
    f.state = Frame::State::broken;
    f.error = "the answer does not start with the MLLP start byte 0x0B";
    return f;
  }
  auto end = in.find(kEnd, 1);
  if (end == std::string_view::npos) {
    if (in.size() > max_bytes) {
      f.state = Frame::State::broken;
      f.error = "no MLLP end block within " + std::to_string(max_bytes) + " bytes";
    }
    return f;
  }
  if (end + 1 >= in.size()) return f;  // the CR after 0x1C has not arrived yet
  if (in[end + 1] != '\r') {
    f.state = Frame::State::broken;
    f.error = "the MLLP end byte 0x1C is not followed by CR";
    return f;
  }
  if (in.find(kStart, 1) < end) {
    f.state = Frame::State::broken;
    f.error = "a second MLLP start byte inside the frame";
    return f;
  }
  f.state = Frame::State::complete;
  f.payload = std::string(in.substr(1, end - 1));
  return f;
}

std::optional<Ack> parse_ack(std::string_view payload, std::string_view control_id, std::string& error) {
  // Segments end with CR; tolerate LF and CRLF from sloppy senders.
  std::vector<std::string_view> segments;
  size_t start = 0;
  for (size_t i = 0; i <= payload.size(); ++i) {
    if (i == payload.size() || payload[i] == '\r' || payload[i] == '\n') {
      if (i > start) segments.push_back(payload.substr(start, i - start));
      start = i + 1;
    }
  }
  if (segments.empty() || segments[0].size() < 8 || segments[0].substr(0, 3) != "MSH") {
    error = "the answer is not an HL7 v2 message (no MSH segment first)";
    return std::nullopt;
  }
  const char fs = segments[0][3];  // MSH-1, the field separator
  if (fs == '\r' || fs == '\n' || static_cast<unsigned char>(fs) < 0x20) {
    error = "the answer's MSH segment has no valid field separator";
    return std::nullopt;
  }
  const char cs = segments[0][4];  // first of MSH-2: the component separator
  for (auto seg : segments) {
    if (seg.substr(0, 3) != "MSA" || seg.size() < 4 || seg[3] != fs) continue;
    auto fields = split(seg, fs);  // fields[1] = MSA-1, fields[2] = MSA-2
    Ack a;
    if (fields.size() > 1) a.code = std::string(split(fields[1], cs)[0]);
    if (a.code.empty()) {
      error = "the acknowledgement's MSA-1 (acknowledgment code) is empty";
      return std::nullopt;
    }
    a.control_id_matches = fields.size() > 2 && split(fields[2], cs)[0] == control_id;
    return a;
  }
  error = "the answer has no MSA segment (not an acknowledgement)";
  return std::nullopt;
}

}  // namespace pacs::hl7
