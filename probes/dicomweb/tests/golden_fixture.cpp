// Golden metrics fixture for the dicomweb kind (see tests/support/golden.h):
// Orthanc with its DICOMweb plugin and basic auth holding one study dated
// today (qido, wado and stow series, pacs_http_status_code), an HTTPS server
// (openssl s_server) whose certificate expiry is exported although its
// answer is no DICOMweb, and a loopback server refusing the STOW-RS canary
// with a FailureReason.
#include <ctime>
#include <regex>
#include <string>

#include "tests/support/golden.h"
#include "tests/support/http_test_server.h"

namespace {

using pacs::test::Orthanc;
using pacs::test::Process;
using pacs::test::TempDir;

class DicomWebGolden : public pacs::test::GoldenFixture {
 public:
  std::string start(const TempDir& dir) override {
    if (Orthanc::dicomweb_plugin().empty()) return "";
    Orthanc::Options o;
    o.plugins = {Orthanc::dicomweb_plugin()};
    o.users = {{"monitor", "golden-pw"}};
    o.extra_json = {R"("DicomWeb": { "Enable": true, "Root": "/dicom-web/" })"};
    orthanc_ = std::make_unique<Orthanc>(o);
    if (!orthanc_->start()) return "";
    char today[16];
    std::time_t now = std::time(nullptr);
    std::strftime(today, sizeof today, "%Y%m%d", std::localtime(&now));
    if (orthanc_->upload(pacs::test::make_dicom_file(dir / "dicomweb-golden.dcm", "GOLDEN^WEB", "GOLDEN1", today)) != 200) {
      return "";
    }
    auto pw = dir.write("dicomweb-golden.pw", "golden-pw\n");
    std::string out;
    if (pacs::test::run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
                                 "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                                 (dir / "dicomweb-golden.key").string(), "-out", (dir / "dicomweb-golden.crt").string()},
                                &out) != 0) {
      return "";
    }
    int tls_port = pacs::test::free_port();
    tls_ = std::make_unique<Process>(
        std::vector<std::string>{"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(tls_port), "-cert",
                                 (dir / "dicomweb-golden.crt").string(), "-key", (dir / "dicomweb-golden.key").string(),
                                 "-www", "-quiet"},
        dir / "dicomweb-golden-s_server.log");
    if (!pacs::test::wait_for_port(tls_port)) return "";
    refuser_ = std::make_unique<pacs::test::LoopbackHttpServer>([](const pacs::test::LoopbackRequest& req) {
      if (req.method != "POST") return pacs::test::LoopbackReply::json("[]");
      std::smatch m;
      std::regex_search(req.body, m, std::regex("1\\.2\\.826\\.0\\.1\\.3680043\\.10\\.999\\.3\\.[0-9.]+"));
      return pacs::test::LoopbackReply::json(R"({"00081198":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":[")" +
                                                 m.str() + R"("]},"00081197":{"vr":"US","Value":[42752]}}]}})",
                                             202);
    });
    const std::string auth = "{ type = \"basic\", username = \"monitor\", password_file = \"" + pw.string() + "\" }";
    const std::string stow = "  [dicomweb.stow]\n  uid_root = \"1.2.826.0.1.3680043.10.999\"\n";
    return "[[dicomweb]]\nname = \"dicomweb-stow\"\nurl = \"" + orthanc_->url() +
           "/dicom-web\"\nchecks = [\"stow\"]\ninterval = \"10s\"\ntimeout = \"10s\"\nauth = " + auth + "\n" + stow +
           "  cleanup = { type = \"orthanc\", url = \"" + orthanc_->url() + "\", auth = " + auth + " }\n\n" +
           "[[dicomweb]]\nname = \"dicomweb-stow-refused\"\nurl = \"" + refuser_->url("/dicom-web") +
           "\"\nchecks = [\"stow\"]\ninterval = \"10s\"\ntimeout = \"5s\"\n" + stow +
           "  cleanup = { type = \"none\" }\n\n" +
           "[[dicomweb]]\nname = \"dicomweb-orthanc\"\nurl = \"" + orthanc_->url() +
           "/dicom-web\"\nchecks = [\"qido\", \"wado\"]\ninterval = \"5s\"\ntimeout = \"5s\"\n"
           "auth = { type = \"basic\", username = \"monitor\", password_file = \"" +
           pw.string() +
           "\" }\n\n"
           "[[dicomweb]]\nname = \"dicomweb-https\"\nurl = \"https://127.0.0.1:" +
           std::to_string(tls_port) + "/dicom-web\"\ninterval = \"2s\"\ntimeout = \"2s\"\ntls = { ca_file = \"" +
           (dir / "dicomweb-golden.crt").string() + "\" }\n";
  }
  std::vector<std::string> probe_requests() const override {
    return {"target=dicomweb-orthanc", "target=dicomweb-orthanc&check=wado", "target=dicomweb-https",
            "target=dicomweb-stow", "target=dicomweb-stow-refused"};
  }

 private:
  std::unique_ptr<Orthanc> orthanc_;
  std::unique_ptr<Process> tls_;
  std::unique_ptr<pacs::test::LoopbackHttpServer> refuser_;
};

}  // namespace

PACS_GOLDEN_FIXTURE(dicomweb, DicomWebGolden);
