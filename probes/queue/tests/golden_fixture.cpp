// Golden fixture of the queue kind (tests/support/golden.h): a spool folder
// with a file, a real Orthanc (jobs and /statistics), and loopback servers
// answering as dcm4chee-arc's queue API and a JSON endpoint do.
#include <memory>
#include <stdexcept>

#include "tests/support/golden.h"
#include "tests/support/http_test_server.h"

namespace pacs::test {
namespace {

class QueueGolden : public GoldenFixture {
 public:
  std::string start(const TempDir& dir) override {
    dir.write("queue-spool/waiting.dcm", "x");
    orthanc_ = std::make_unique<Orthanc>();
    if (!orthanc_->start()) throw std::runtime_error("Orthanc did not start: " + orthanc_->log());
    dcm4chee_ = std::make_unique<LoopbackHttpServer>([](const LoopbackRequest&) { return LoopbackReply::json(R"({"count":2})"); });
    json_ = std::make_unique<LoopbackHttpServer>([](const LoopbackRequest&) { return LoopbackReply::json(R"({"depth":5})"); });
    return "[[queue]]\nname = \"queue-spool\"\ntype = \"directory\"\npath = \"" + (dir / "queue-spool").string() +
           "\"\n\n[[queue]]\nname = \"queue-orthanc\"\ntype = \"orthanc\"\nurl = \"" + orthanc_->url() +
           "\"\n\n[[queue]]\nname = \"queue-dcm4chee\"\ntype = \"dcm4chee\"\nurl = \"" +
           dcm4chee_->url("/dcm4chee-arc") + "\"\nqueues = [\"Export1\"]\n\n"
           "[[queue]]\nname = \"queue-json\"\ntype = \"http_json\"\nurl = \"" + json_->url("/status") +
           "\"\nvalues = [{ name = \"depth\", pointer = \"/depth\" }]\n";
  }

 private:
  std::unique_ptr<Orthanc> orthanc_;
  std::unique_ptr<LoopbackHttpServer> dcm4chee_, json_;
};

}  // namespace
}  // namespace pacs::test

PACS_GOLDEN_FIXTURE(queue, pacs::test::QueueGolden);
