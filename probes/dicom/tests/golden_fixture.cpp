// Golden fixture of the dicom kind (tests/support/golden.h): a real Orthanc
// speaking DICOM-TLS with its worklist plugin and one study dated today
// (echo, find and worklist succeed; every phase, the DIMSE status, matches,
// also per modality with the newest study's age, worklist items and the peer
// certificate's expiry are exported), and storescp --refuse (the
// A-ASSOCIATE-RJ gauges); and a plain Orthanc for the image round trip
// (store with REST cleanup, retrieve by C-MOVE to the agent's SCP, storage
// commitment with the report on a new association), whose open door also
// fails the access canary (pacs_dicom_access_refused 0).
#include <ctime>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "tests/support/golden.h"

namespace pacs::test {
namespace {

namespace fs = std::filesystem;

std::string today() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  return buf;
}

void sh(const std::vector<std::string>& argv) {
  std::string out;
  if (run_command(argv, &out) != 0) throw std::runtime_error(argv[0] + " failed: " + out);
}

class DicomGolden : public GoldenFixture {
 public:
  std::string start(const TempDir& dir) override {
    auto d = [&](const char* n) { return (dir / n).string(); };
    sh({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d("dicom-ca.key"), "-out",
        d("dicom-ca.crt"), "-days", "30", "-subj", "/CN=golden CA"});
    sh({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", d("dicom-server.key"), "-out",
        d("dicom-server.csr"), "-subj", "/CN=127.0.0.1"});
    sh({"openssl", "x509", "-req", "-in", d("dicom-server.csr"), "-CA", d("dicom-ca.crt"), "-CAkey",
        d("dicom-ca.key"), "-CAcreateserial", "-out", d("dicom-server.crt"), "-days", "10"});
    fs::create_directories(dir / "dicom-wl");
    auto dump = dir.write("dicom-wl.dump",
                          "(0008,0005) CS [ISO_IR 100]\n(0010,0010) PN [GOLDEN^WORKLIST]\n(0010,0020) LO [GW1]\n"
                          "(0040,0100) SQ (Sequence with undefined length)\n"
                          "(fffe,e000) na (Item with undefined length)\n"
                          "(0008,0060) CS [CT]\n(0040,0001) AE [CT01]\n(0040,0002) DA [" + today() + "]\n"
                          "(0040,0009) SH [SPS1]\n"
                          "(fffe,e00d) na (ItemDelimitationItem)\n(fffe,e0dd) na (SequenceDelimitationItem)\n");
    sh({"dump2dcm", dump.string(), (dir / "dicom-wl" / "item.wl").string()});

    Orthanc::Options o;
    o.aet = "ORTHANC";
    o.modalities["agent"] = {"PACS_AGENT", "127.0.0.1", 104};
    o.extra_json = {"\"Plugins\": [\"/usr/share/orthanc/plugins/libModalityWorklists.so\"]",
                    "\"Worklists\": {\"Enable\": true, \"Database\": \"" + (dir / "dicom-wl").string() + "\"}",
                    "\"DicomTlsEnabled\": true", "\"DicomTlsCertificate\": \"" + d("dicom-server.crt") + "\"",
                    "\"DicomTlsPrivateKey\": \"" + d("dicom-server.key") + "\"",
                    "\"DicomTlsTrustedCertificates\": \"" + d("dicom-ca.crt") + "\"",
                    "\"DicomTlsRemoteCertificateRequired\": false"};
    orthanc_ = std::make_unique<Orthanc>(o);
    if (!orthanc_->start()) throw std::runtime_error("Orthanc did not start: " + orthanc_->log());
    if (orthanc_->upload(make_dicom_file(dir / "dicom-study.dcm", "GOLDEN^STUDY", "GS1", today())) != 200) {
      throw std::runtime_error("cannot upload the study");
    }
    int refuse_port = free_port();
    refuser_ = std::make_unique<Process>(std::vector<std::string>{"storescp", "--refuse", std::to_string(refuse_port)},
                                         dir / "dicom-storescp.log");
    if (!wait_for_port(refuse_port)) throw std::runtime_error("storescp did not listen");

    // The image round trip: the agent's SCP on one port for move and commit
    // (their runs take turns), known to Orthanc as PACS_AGENT.
    const int scp_port = free_port();
    Orthanc::Options img;
    img.aet = "IMAGES";
    img.modalities["agent"] = {"PACS_AGENT", "127.0.0.1", scp_port};
    images_ = std::make_unique<Orthanc>(img);
    if (!images_->start()) throw std::runtime_error("Orthanc (images) did not start: " + images_->log());
    const std::string scp = "\"127.0.0.1\"\n  listen_port = " + std::to_string(scp_port) + "\n";

    return "[[dicom]]\nname = \"dicom-images\"\nhost = \"127.0.0.1\"\nport = " +
           std::to_string(images_->dicom_port()) +
           "\ncalled_ae_title = \"IMAGES\"\ncalling_ae_title = \"PACS_AGENT\"\n"
           "checks = [\"store\", \"retrieve\", \"commit\"]\ninterval = \"5s\"\ntimeout = \"4s\"\n"
           "  [dicom.store]\n  uid_root = \"1.2.826.0.1.3680043.10.999\"\n"
           "  cleanup = { type = \"orthanc\", url = \"" + images_->url() + "\" }\n"
           "  [dicom.retrieve]\n  method = \"move\"\n  listen_address = " + scp +
           "  [dicom.commit]\n  listen_address = " + scp + "\n"
           "[[dicom]]\nname = \"dicom-tls\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(orthanc_->dicom_port()) +
           "\ncalled_ae_title = \"ORTHANC\"\nchecks = [\"echo\", \"find\", \"worklist\"]\n"
           "  [dicom.tls]\n  ca_file = \"" + d("dicom-ca.crt") + "\"\n\n"
           // Matches per modality and the newest study's age (group_by).
           "[[dicom]]\nname = \"dicom-grouped\"\nhost = \"127.0.0.1\"\nport = " +
           std::to_string(orthanc_->dicom_port()) + "\ncalled_ae_title = \"ORTHANC\"\nchecks = [\"find\"]\n"
           "  [dicom.find]\n  group_by = \"ModalitiesInStudy\"\n"
           "  [dicom.tls]\n  ca_file = \"" + d("dicom-ca.crt") + "\"\n\n"
           "[[dicom]]\nname = \"dicom-refused\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(refuse_port) +
           "\ncalled_ae_title = \"ANY\"\nchecks = [\"echo\"]\n\n"
           // The access canary: the images Orthanc answers everyone (access_not_enforced).
           "[[dicom]]\nname = \"dicom-access\"\nhost = \"127.0.0.1\"\nport = " +
           std::to_string(images_->dicom_port()) + "\ncalled_ae_title = \"IMAGES\"\nchecks = [\"access\"]\n";
  }

 private:
  std::unique_ptr<Orthanc> orthanc_, images_;
  std::unique_ptr<Process> refuser_;
};

}  // namespace
}  // namespace pacs::test

PACS_GOLDEN_FIXTURE(dicom, pacs::test::DicomGolden);
