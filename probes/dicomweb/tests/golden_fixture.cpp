// Golden metrics fixture for the dicomweb kind (see tests/support/golden.h):
// Orthanc with its DICOMweb plugin and basic auth holding one study dated
// today (qido and wado series, pacs_http_status_code), and an HTTPS server
// (openssl s_server) whose certificate expiry is exported although its
// answer is no DICOMweb.
#include <ctime>
#include <string>

#include "tests/support/golden.h"

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
    return "[[dicomweb]]\nname = \"dicomweb-orthanc\"\nurl = \"" + orthanc_->url() +
           "/dicom-web\"\nchecks = [\"qido\", \"wado\"]\ninterval = \"5s\"\ntimeout = \"5s\"\n"
           "auth = { type = \"basic\", username = \"monitor\", password_file = \"" +
           pw.string() +
           "\" }\n\n"
           "[[dicomweb]]\nname = \"dicomweb-https\"\nurl = \"https://127.0.0.1:" +
           std::to_string(tls_port) + "/dicom-web\"\ninterval = \"2s\"\ntimeout = \"2s\"\ntls = { ca_file = \"" +
           (dir / "dicomweb-golden.crt").string() + "\" }\n";
  }
  std::vector<std::string> probe_requests() const override {
    return {"target=dicomweb-orthanc", "target=dicomweb-orthanc&check=wado", "target=dicomweb-https"};
  }

 private:
  std::unique_ptr<Orthanc> orthanc_;
  std::unique_ptr<Process> tls_;
};

}  // namespace

PACS_GOLDEN_FIXTURE(dicomweb, DicomWebGolden);
