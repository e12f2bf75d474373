// hl7 kind without a network: message building, MLLP framing, ACK parsing,
// config validation with exact messages, and the sample config.
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "agent/config.h"
#include "probes/hl7/hl7.h"
#include "tests/support/probe_testing.h"

namespace pacs::hl7 {
namespace {

Options adt() {
  Options o;
  o.host = "127.0.0.1";
  o.receiving_application = "RIS";
  o.receiving_facility = "HOSP";
  o.message_type = "ADT^A08";
  return o;
}

TEST(Hl7Message, DefaultAdtBodyCarriesOnlyTheTestPatient) {
  auto m = build_message(adt(), "PA0123456789abcdef", "20240102030405+0100");
  EXPECT_EQ(m,
            "MSH|^~\\&|PACS_AGENT||RIS|HOSP|20240102030405+0100||ADT^A08|PA0123456789abcdef|T|2.5.1\r"
            "EVN|A08|20240102030405+0100\r"
            "PID|1||PACS-AGENT-CANARY^^^PACS_AGENT||ZZ_PACS_AGENT^CANARY\r"
            "PV1|1|N\r");
}

TEST(Hl7Message, ConfiguredSegmentsReplaceTheBodyAndNowIsExpanded) {
  auto o = adt();
  o.message_type = "ORM^O01";
  EXPECT_TRUE(default_segments(o).empty());
  o.segments = {"ORC|NW|{now}|{now}"};
  o.processing_id = "D";
  auto m = build_message(o, "PA1", "20240102");
  EXPECT_EQ(m, "MSH|^~\\&|PACS_AGENT||RIS|HOSP|20240102||ORM^O01|PA1|D|2.5.1\rORC|NW|20240102|20240102\r");
}

TEST(Hl7Message, ControlIdsAreFreshAndFitMsh10) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i) {
    auto id = new_control_id();
    EXPECT_LE(id.size(), 20u);
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(Hl7Mllp, FramesAndReadsBack) {
  auto f = mllp_frame("MSH|x\r");
  EXPECT_EQ(f, std::string("\x0bMSH|x\r\x1c\r"));
  auto r = read_frame(f, 100);
  ASSERT_EQ(r.state, Frame::State::complete);
  EXPECT_EQ(r.payload, "MSH|x\r");
  // Incomplete at every cut before the final CR.
  for (size_t n = 0; n < f.size(); ++n) EXPECT_EQ(read_frame(f.substr(0, n), 100).state, Frame::State::incomplete) << n;
}

TEST(Hl7Mllp, BrokenFraming) {
  EXPECT_EQ(read_frame("MSH|x\r\x1c\r", 100).state, Frame::State::broken);
  EXPECT_EQ(read_frame("\x0bMSH|x\r\x1cZ", 100).state, Frame::State::broken);
  EXPECT_EQ(read_frame("\x0bMSH\x0b|x\r\x1c\r", 100).state, Frame::State::broken);
  EXPECT_EQ(read_frame("\x0b" + std::string(200, 'x'), 100).state, Frame::State::broken);
  EXPECT_EQ(read_frame("\x0b" + std::string(90, 'x'), 100).state, Frame::State::incomplete);
}

TEST(Hl7Ack, ParsesCodeAndControlId) {
  std::string err;
  auto a = parse_ack("MSH|^~\\&|RIS||PA||2024||ACK^A08|9|T|2.5.1\rMSA|AA|PA1\r", "PA1", err);
  ASSERT_TRUE(a) << err;
  EXPECT_EQ(a->code, "AA");
  EXPECT_TRUE(a->control_id_matches);
  a = parse_ack("MSH|^~\\&|RIS||PA||2024||ACK|9|T|2.3\nMSA|AE|PA2|bad thing\n", "PA1", err);
  ASSERT_TRUE(a) << err;
  EXPECT_EQ(a->code, "AE");
  EXPECT_FALSE(a->control_id_matches);
  // Other delimiters, as MSH-1/MSH-2 declare them.
  a = parse_ack("MSH#*~\\&#RIS\rERR#x\rMSA#CA*x#PA1\r", "PA1", err);
  ASSERT_TRUE(a) << err;
  EXPECT_EQ(a->code, "CA");
  EXPECT_TRUE(a->control_id_matches);
}

TEST(Hl7Ack, NotAnAcknowledgement) {
  std::string err;
  EXPECT_FALSE(parse_ack("", "PA1", err));
  EXPECT_FALSE(parse_ack("PID|1||SECRET\r", "PA1", err));
  EXPECT_EQ(err.find("SECRET"), std::string::npos);
  EXPECT_FALSE(parse_ack("MSH|^~\\&|RIS\rPID|1||SECRET\r", "PA1", err));
  EXPECT_NE(err.find("no MSA"), std::string::npos) << err;
  EXPECT_FALSE(parse_ack("MSH|^~\\&|RIS\rMSA||PA1\r", "PA1", err));
  EXPECT_NE(err.find("MSA-1"), std::string::npos) << err;
}

std::shared_ptr<const Config> parse(const std::string& body) {
  return parse_config("[[hl7]]\nname = \"ris\"\n" + body, "t.toml");
}

TEST(Hl7Config, MinimalTargetAndDefaults) {
  auto c = parse("host = \"10.1.2.40\"\nmessage_type = \"ADT^A08\"\n");
  ASSERT_EQ(c->probes.size(), 1u);
  const auto& s = c->probes[0];
  EXPECT_EQ(s.kind, "hl7");
  EXPECT_EQ(s.probe, "hl7");
  EXPECT_EQ(s.check, "hl7");
  // Without TLS the probe cannot fail with tls_failure; its counter is not pre-created.
  EXPECT_EQ(std::count(s.reasons.begin(), s.reasons.end(), Reason::tls_failure), 0);
  EXPECT_EQ(std::count(s.reasons.begin(), s.reasons.end(), Reason::negative_ack), 1);
}

struct BadCase {
  const char* name;
  std::string body;  // after [[hl7]] name = "ris" (lines 1-2)
  std::string error;
};

class InvalidHl7Config : public ::testing::TestWithParam<BadCase> {};

TEST_P(InvalidHl7Config, IsRejectedWithFileLineAndKey) {
  test::expect_config_error("[[hl7]]\nname = \"ris\"\n" + GetParam().body, GetParam().error);
}

const std::string kOk = "host = \"h\"\nmessage_type = \"ADT^A08\"\n";

INSTANTIATE_TEST_SUITE_P(
    Hl7, InvalidHl7Config,
    ::testing::Values(
        BadCase{"no_host", "message_type = \"ADT^A08\"\n", "t.toml:1: hl7[0]: missing required key \"host\""},
        BadCase{"no_type", "host = \"h\"\n", "t.toml:1: hl7[0]: missing required key \"message_type\""},
        BadCase{"bad_type", "host = \"h\"\nmessage_type = \"ADT\"\n",
                "t.toml:4: hl7[0].message_type: must be MSH-9 as message code^trigger event[^structure], e.g. \"ADT^A08\""},
        BadCase{"bad_processing", kOk + "processing_id = \"X\"\n",
                "t.toml:5: hl7[0].processing_id: must be \"P\" (production), \"T\" (training/test) or \"D\" (debugging)"},
        BadCase{"bad_version", kOk + "version = \"3.0\"\n",
                "t.toml:5: hl7[0].version: must be an HL7 v2 version such as \"2.3\" or \"2.5.1\""},
        BadCase{"delimiter", kOk + "receiving_application = \"R|S\"\n",
                "t.toml:5: hl7[0].receiving_application: must not contain the HL7 delimiters | ~ \\ &"},
        BadCase{"patient_id_caret", kOk + "patient_id = \"A^B\"\n",
                "t.toml:5: hl7[0].patient_id: must not contain the HL7 delimiters | ^ ~ \\ &"},
        BadCase{"port", kOk + "port = 0\n", "t.toml:5: hl7[0].port: must be 1..65535"},
        BadCase{"segment_msh", kOk + "segments = [\"MSH|x\"]\n",
                "t.toml:5: hl7[0].segments: MSH is built by the agent (from the keys); list only the segments after it"},
        BadCase{"segment_shape", kOk + "segments = [\"pid 1\"]\n",
                "t.toml:5: hl7[0].segments: each segment starts with its three-character ID and '|', e.g. \"PID|1||...\""},
        BadCase{"tls_relative", kOk + "tls = { ca_file = \"ca.pem\" }\n",
                "t.toml:5: hl7[0].tls.ca_file: must be an absolute path"},
        BadCase{"unknown", kOk + "mesage_type = \"x\"\n", "t.toml:5: hl7[0].mesage_type: unknown key"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(Hl7Config, SampleFileParsesWithTheRealLoader) {
  const char* src = std::getenv("PACS_SOURCE_DIR");
  std::ifstream in(std::string(src ? src : PACS_SOURCE_DIR) + "/probes/hl7/sample.toml");
  ASSERT_TRUE(in) << "cannot open probes/hl7/sample.toml";
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = parse_config(ss.str(), "sample.toml");
  ASSERT_EQ(c->probes.size(), 2u);
  EXPECT_EQ(c->probes[0].target, "ris-adt");
  EXPECT_EQ(c->probes[1].target, "broker-orders");
  EXPECT_EQ(std::count(c->probes[1].reasons.begin(), c->probes[1].reasons.end(), Reason::tls_failure), 1);
}

}  // namespace
}  // namespace pacs::hl7
