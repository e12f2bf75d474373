// One HL7 v2 message over MLLP, one acknowledgement, one connection per run.
#include <chrono>
#include <ctime>

#include "probes/hl7/hl7.h"
#include "probes/lib/http/stream.h"

namespace pacs::hl7 {

namespace {

std::string hl7_timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S%z", &tm);  // HL7 DTM with UTC offset
  return buf;
}

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string ms(double s) { return std::to_string(static_cast<long long>(s * 1000 + 0.5)) + " ms"; }

}  // namespace

std::vector<Reason> reasons(bool tls) {
  std::vector<Reason> r = {Reason::dns_failure,     Reason::connection_refused, Reason::connect_timeout,
                           Reason::connection_reset, Reason::protocol_error,     Reason::response_timeout,
                           Reason::negative_ack};
  if (tls) r.push_back(Reason::tls_failure);
  return r;
}

ProbeResult Hl7Probe::run(const ProbeContext& ctx) {
  ProbeResult r = ProbeResult::fail(Reason::internal, "");
  auto failed = [&r](Reason reason, std::string message) {
    r.success = false;
    r.reason = reason;
    r.message = std::move(message);
    return r;
  };

  http::Stream stream;
  auto st = stream.connect(o_.host, o_.port, o_.tls, ctx);
  if (stream.connect_seconds() > 0) {
    r.add("pacs_hl7_connect_seconds", "TCP connect (and TLS handshake) time of the last run.",
          o_.tls && stream.tls_seconds() > 0 ? stream.tls_seconds() : stream.connect_seconds());
  }
  if (stream.cert_not_after()) {
    r.add("pacs_hl7_tls_cert_expiry_timestamp_seconds", "notAfter of the receiver's TLS certificate (Unix time).",
          *stream.cert_not_after());
  }
  if (!st.ok) return failed(st.reason, st.message);

  const std::string control_id = new_control_id();
  const std::string message = build_message(o_, control_id, hl7_timestamp());
  const auto sent_at = Clock::now();
  st = stream.send_all(mllp_frame(message), ctx);
  if (ctx.tracing()) {
    ctx.note("message sent", o_.message_type + " control ID " + control_id + " processing ID " + o_.processing_id +
                                 ", " + std::to_string(message.size()) + " bytes");
  }
  if (!st.ok) return failed(st.reason, st.message);

  std::string received;
  Frame frame;
  for (;;) {
    st = stream.receive_some(received, o_.max_ack_bytes + 3, ctx);
    if (!st.ok) {
      if (st.reason == Reason::response_timeout) {
        return failed(Reason::response_timeout,
                      received.empty() ? "no acknowledgement before the deadline"
                                       : "incomplete acknowledgement (" + std::to_string(received.size()) +
                                             " bytes) before the deadline");
      }
      if (st.reason == Reason::connection_reset && !received.empty()) {
        return failed(Reason::protocol_error, "the receiver closed the connection inside an MLLP frame (" +
                                                  std::to_string(received.size()) + " bytes)");
      }
      return failed(st.reason, st.message);
    }
    frame = read_frame(received, o_.max_ack_bytes);
    if (frame.state == Frame::State::broken) return failed(Reason::protocol_error, "broken MLLP framing: " + frame.error);
    if (frame.state == Frame::State::complete) break;
  }
  const double rtt = since(sent_at);
  r.add("pacs_hl7_round_trip_seconds", "Time from sending the message to the complete acknowledgement.", rtt);

  std::string error;
  auto ack = parse_ack(frame.payload, control_id, error);
  if (!ack) {
    ctx.note("ACK", "unusable answer, " + std::to_string(frame.payload.size()) + " bytes: " + error);
    return failed(Reason::protocol_error, error);
  }
  bool known = false;
  for (const auto& c : ack_codes()) {
    known = known || c == ack->code;
  }
  if (ctx.tracing()) {
    ctx.note("ACK", "MSA-1 " + (known ? ack->code : std::string("(not a known code)")) + ", control ID " +
                        (ack->control_id_matches ? "matches" : "does not match") + ", " +
                        std::to_string(frame.payload.size()) + " bytes, " + ms(rtt));
  }
  if (!known) return failed(Reason::protocol_error, "MSA-1 is not an acknowledgment code (AA AE AR CA CE CR)");
  for (const auto& c : ack_codes()) {
    r.add("pacs_hl7_ack_code", "Acknowledgment code (MSA-1) of the last answer: 1 for the code received.",
          c == ack->code ? 1 : 0, {{"code", c}});
  }
  if (ack->code != "AA" && ack->code != "CA") {
    std::string what = ack->code == "AE" || ack->code == "CE" ? "error" : "reject";
    return failed(Reason::negative_ack, "negative acknowledgement " + ack->code + " (application " + what + ")" +
                                            (ack->control_id_matches ? "" : "; its MSA-2 is not the control ID sent"));
  }
  if (!ack->control_id_matches) {
    return failed(Reason::protocol_error, "acknowledgement " + ack->code +
                                              " for another message: MSA-2 is not the control ID sent");
  }
  r.success = true;
  r.reason = Reason::none;
  r.message = ack->code + " in " + ms(rtt);
  return r;
}

}  // namespace pacs::hl7
