// The hl7 probe kind: one HL7 v2 message over MLLP to an interface engine
// (RIS, broker, EMR inbound), and its acknowledgement checked. The message
// carries only the agent's own test patient; README.md explains how to pick
// a message type and processing ID the receiver acknowledges without acting
// on. The pieces are public for tests; the agent sees only the Kind.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "probes/kind.h"
#include "probes/lib/http/http_client.h"

namespace pacs::hl7 {

const Kind& kind();
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const ConfigTable& agent);

struct Options {
  std::string host;
  int port = 2575;
  std::string sending_application = "PACS_AGENT";
  std::string sending_facility;
  std::string receiving_application;
  std::string receiving_facility;
  std::string message_type;         // MSH-9, e.g. "ADT^A08"
  std::string processing_id = "T";  // MSH-11: P production, T training/test, D debugging
  std::string version = "2.5.1";    // MSH-12
  std::string patient_id = "PACS-AGENT-CANARY";
  std::string patient_name = "ZZ_PACS_AGENT^CANARY";
  // Segments after MSH, each without its terminating CR; "{now}" becomes the
  // send time (YYYYMMDDHHMMSS). Empty = the default body for the type.
  std::vector<std::string> segments;
  std::optional<http::Tls> tls;
  std::size_t max_ack_bytes = 1u << 20;
};

// ---- message and MLLP framing (pure functions, unit-tested) ---------------

// The segments after MSH that are sent when `segments` is not configured:
// for ADT messages EVN, PID (the test patient) and PV1 (patient class N);
// for any other type none.
std::vector<std::string> default_segments(const Options& o);
// One message, segments separated by CR, as sent (without MLLP framing).
std::string build_message(const Options& o, std::string_view control_id, std::string_view timestamp);
// A fresh MSH-10 (20 characters at most, unique per run).
std::string new_control_id();
// 0x0B payload 0x1C 0x0D.
std::string mllp_frame(std::string_view payload);

struct Frame {
  enum class State { incomplete, complete, broken } state = State::incomplete;
  std::string payload;  // complete: the bytes between 0x0B and 0x1C 0x0D
  std::string error;    // broken: what was wrong (no data from the peer in it)
};
// Looks at what arrived so far.
Frame read_frame(std::string_view received, std::size_t max_bytes);

struct Ack {
  std::string code;                 // MSA-1: AA, AE, AR, CA, CE, CR
  bool control_id_matches = false;  // MSA-2 == the MSH-10 sent
};
// Parses an acknowledgement; nullopt and `error` set when it is not one
// (no MSH first, no MSA, empty MSA-1). `error` never quotes the peer's data.
std::optional<Ack> parse_ack(std::string_view payload, std::string_view control_id, std::string& error);

// The acknowledgement codes exported as pacs_hl7_ack_code{code}.
const std::vector<std::string>& ack_codes();

class Hl7Probe : public Probe {
 public:
  explicit Hl7Probe(Options o) : o_(std::move(o)) {}
  ProbeResult run(const ProbeContext& ctx) override;

 private:
  Options o_;
};

std::vector<Reason> reasons(bool tls);

}  // namespace pacs::hl7
