// Golden metrics fixture for the hl7 kind (see tests/support/golden.h): an
// MLLP peer that acknowledges every message with AA for its control ID
// (pacs_hl7_ack_code, _round_trip_seconds, _connect_seconds), and a TLS
// server (openssl s_server) whose handshake exports the certificate expiry.
#include <string>

#include "probes/hl7/tests/raw_tcp_peer.h"
#include "tests/support/golden.h"

namespace {

using pacs::test::Process;
using pacs::test::TempDir;

// MSH-10 of the message received (fields split on '|').
std::string control_id(const std::string& in) {
  size_t pos = in.find("MSH|");
  for (int field = 0; field < 9 && pos != std::string::npos; ++field) pos = in.find('|', pos + 1);
  if (pos == std::string::npos) return {};
  auto end = in.find('|', pos + 1);
  return in.substr(pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1);
}

class Hl7Golden : public pacs::test::GoldenFixture {
 public:
  std::string start(const TempDir& dir) override {
    ack_ = std::make_unique<pacs::test::RawTcpPeer>([](const std::string& in) {
      return "\x0bMSH|^~\\&|RIS||PACS_AGENT||20240101000000||ACK^A08|A1|T|2.5.1\rMSA|AA|" + control_id(in) + "\r\x1c\r";
    });
    std::string out;
    if (pacs::test::run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
                                 "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                                 (dir / "hl7-golden.key").string(), "-out", (dir / "hl7-golden.crt").string()},
                                &out) != 0) {
      return "";
    }
    int tls_port = pacs::test::free_port();
    tls_ = std::make_unique<Process>(
        std::vector<std::string>{"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(tls_port), "-cert",
                                 (dir / "hl7-golden.crt").string(), "-key", (dir / "hl7-golden.key").string(), "-quiet"},
        dir / "hl7-golden-s_server.log");
    if (!pacs::test::wait_for_port(tls_port)) return "";
    auto target = [](const std::string& name, int port) {
      return "[[hl7]]\nname = \"" + name + "\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(port) +
             "\nmessage_type = \"ADT^A08\"\ninterval = \"2s\"\ntimeout = \"1s\"\n";
    };
    return target("hl7-ack", ack_->port()) + "\n" + target("hl7-tls", tls_port) + "  [hl7.tls]\n  ca_file = \"" +
           (dir / "hl7-golden.crt").string() + "\"\n";
  }
  std::vector<std::string> probe_requests() const override { return {"target=hl7-ack", "target=hl7-tls&check=hl7"}; }

 private:
  std::unique_ptr<pacs::test::RawTcpPeer> ack_;
  std::unique_ptr<Process> tls_;
};

}  // namespace

PACS_GOLDEN_FIXTURE(hl7, Hl7Golden);
