// [[dicom]] config parsing through the real loader (valid settings, every
// rejected case with its exact message), "today" expansion, the mapping
// from DCMTK conditions to failure reasons, and the A-ASSOCIATE-RJ texts.
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "agent/config.h"
#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmnet/cond.h"
#include "probes/config_table.h"
#include "probes/dicom/dicom_probe.h"
#include "tests/support/support.h"

namespace pacs::dicom {
namespace {

const DicomProbe& as_dicom(const std::unique_ptr<Probe>& p) {
  auto* d = dynamic_cast<const DicomProbe*>(p.get());
  if (!d) throw std::runtime_error("not a DicomProbe");
  return *d;
}

TEST(DicomConfig, DefaultsGiveOneEchoProbe) {
  auto c = parse_config("[agent]\ncalling_ae_title = \"MONITOR\"\n[[dicom]]\nname = \"pacs\"\nhost = \"10.1.2.3\"\n"
                        "called_ae_title = \"ARCHIVE\"\n",
                        "t.toml");
  ASSERT_EQ(c->probes.size(), 1u);
  const auto& spec = c->probes[0];
  EXPECT_EQ(spec.probe, "dicom_echo");
  EXPECT_EQ(spec.target, "pacs");
  auto probe = spec.make();
  const auto& o = as_dicom(probe).options();
  EXPECT_EQ(o.host, "10.1.2.3");
  EXPECT_EQ(o.port, 104);
  EXPECT_EQ(o.called_ae_title, "ARCHIVE");
  EXPECT_EQ(o.calling_ae_title, "MONITOR");  // from [agent]
  EXPECT_FALSE(o.tls);
  // Reasons start at 0: everything DICOM can produce, no TLS without TLS.
  EXPECT_EQ(std::count(spec.reasons.begin(), spec.reasons.end(), Reason::tls_failure), 0);
  EXPECT_EQ(std::count(spec.reasons.begin(), spec.reasons.end(), Reason::association_rejected), 1);
  EXPECT_EQ(std::count(spec.reasons.begin(), spec.reasons.end(), Reason::io_error), 0);
  // An address is never resolved: no dns_failure counter for it.
  EXPECT_EQ(std::count(spec.reasons.begin(), spec.reasons.end(), Reason::dns_failure), 0);
}

TEST(DicomConfig, EveryCheckWithSettings) {
  test::TempDir tmp;
  auto ca = tmp.write("ca.pem", "x");
  auto cert = tmp.write("c.pem", "x");
  auto key = tmp.write("k.pem", "x");
  std::string toml = "[[dicom]]\nname = \"archive\"\nhost = \"pacs.example.org\"\nport = 11112\n"
                     "called_ae_title = \"ARCHIVE\"\ncalling_ae_title = \"PROBE\"\n"
                     "checks = [\"echo\", \"find\", \"worklist\"]\ninterval = \"15s\"\ntimeout = \"5s\"\n"
                     "[dicom.find]\nlevel = \"PATIENT\"\nkeys = { PatientName = \"CANARY*\" }\n"
                     "[dicom.worklist]\nkeys = { ScheduledStationAETitle = \"CT01\", Modality = \"CT\", "
                     "ScheduledProcedureStepStartDate = \"today\" }\n"
                     "[dicom.tls]\nca_file = \"" + ca.string() + "\"\ncert_file = \"" + cert.string() +
                     "\"\nkey_file = \"" + key.string() + "\"\nverify_peer = false\n";
  auto c = parse_config(toml, "t.toml");
  ASSERT_EQ(c->probes.size(), 3u);
  EXPECT_EQ(c->probes[0].probe, "dicom_echo");
  EXPECT_EQ(c->probes[1].probe, "dicom_find");
  EXPECT_EQ(c->probes[2].probe, "dicom_worklist");
  for (const auto& s : c->probes) {
    EXPECT_EQ(s.interval, std::chrono::seconds(15));
    EXPECT_EQ(s.timeout, std::chrono::seconds(5));
    EXPECT_EQ(std::count(s.reasons.begin(), s.reasons.end(), Reason::tls_failure), 1);
    EXPECT_EQ(std::count(s.reasons.begin(), s.reasons.end(), Reason::dns_failure), 1);  // a host name
  }
  auto p = c->probes[1].make();
  const auto& o = as_dicom(p).options();
  EXPECT_EQ(as_dicom(p).check(), Check::find);
  EXPECT_EQ(o.port, 11112);
  EXPECT_EQ(o.calling_ae_title, "PROBE");
  EXPECT_EQ(o.find.level, FindOptions::Level::patient);
  EXPECT_EQ(o.find.model, FindOptions::Model::patient_root);  // PATIENT implies patient_root
  ASSERT_EQ(o.find.keys.size(), 1u);
  EXPECT_EQ(o.find.keys[0].keyword, "PatientName");
  ASSERT_EQ(o.worklist.keys.size(), 3u);
  std::map<std::string, std::string> wl;
  for (const auto& k : o.worklist.keys) wl[k.keyword] = k.value;
  EXPECT_EQ(wl, (std::map<std::string, std::string>{
                    {"Modality", "CT"}, {"ScheduledProcedureStepStartDate", "today"}, {"ScheduledStationAETitle", "CT01"}}));
  ASSERT_TRUE(o.tls);
  EXPECT_EQ(o.tls->ca_file, ca.string());
  EXPECT_EQ(o.tls->cert_file, cert.string());
  EXPECT_FALSE(o.tls->verify_peer);
}

TEST(DicomConfig, FindDefaultsToStudyRootStudyDateToday) {
  auto c = parse_config("[[dicom]]\nname = \"a\"\nhost = \"127.0.0.1\"\ncalled_ae_title = \"A\"\nchecks = [\"find\"]\n",
                        "t.toml");
  auto p = c->probes.at(0).make();
  const auto& f = as_dicom(p).options().find;
  EXPECT_EQ(f.level, FindOptions::Level::study);
  EXPECT_EQ(f.model, FindOptions::Model::study_root);
  ASSERT_EQ(f.keys.size(), 1u);
  EXPECT_EQ(f.keys[0].keyword, "StudyDate");
  EXPECT_EQ(f.keys[0].value, "today");
}

TEST(DicomConfig, SampleFileParsesWithTheRealLoader) {
  const char* src = std::getenv("PACS_SOURCE_DIR");
  std::string dir = src ? src : PACS_SOURCE_DIR;
  std::ifstream in(dir + "/probes/dicom/sample.toml");
  ASSERT_TRUE(in) << "cannot open probes/dicom/sample.toml";
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = parse_config(ss.str(), "sample.toml");
  ASSERT_GE(c->probes.size(), 3u);
  std::set<std::string> kinds;
  for (const auto& s : c->probes) kinds.insert(s.probe);
  EXPECT_TRUE(kinds.count("dicom_echo"));
  EXPECT_TRUE(kinds.count("dicom_find"));
  EXPECT_TRUE(kinds.count("dicom_worklist"));
  EXPECT_TRUE(kinds.count("dicom_store"));
  EXPECT_TRUE(kinds.count("dicom_retrieve"));
  EXPECT_TRUE(kinds.count("dicom_commit"));
  EXPECT_TRUE(kinds.count("dicom_access"));
}

// The access canary: its own probe, the prefix, and reasons without the
// refusals (a reject, an abort or a refused C-ECHO is its success).
TEST(DicomConfig, AccessCheckWithPrefixAndReasons) {
  auto c = parse_config("[[dicom]]\nname = \"pacs\"\nhost = \"10.1.2.3\"\ncalled_ae_title = \"ARCHIVE\"\n"
                        "checks = [\"echo\", \"access\"]\n[dicom.access]\ncalling_ae_prefix = \"AUDIT-\"\n",
                        "t.toml");
  ASSERT_EQ(c->probes.size(), 2u);
  const auto& spec = c->probes[1];
  EXPECT_EQ(spec.probe, "dicom_access");
  auto probe = spec.make();
  EXPECT_EQ(as_dicom(probe).check(), Check::access);
  EXPECT_EQ(as_dicom(probe).options().access.calling_ae_prefix, "AUDIT-");
  auto has = [&](Reason r) { return std::count(spec.reasons.begin(), spec.reasons.end(), r) == 1; };
  EXPECT_TRUE(has(Reason::access_not_enforced));
  EXPECT_TRUE(has(Reason::connection_refused));
  EXPECT_TRUE(has(Reason::association_timeout));
  EXPECT_TRUE(has(Reason::dimse_timeout));
  EXPECT_FALSE(has(Reason::association_rejected));
  EXPECT_FALSE(has(Reason::association_aborted));
  EXPECT_FALSE(has(Reason::dimse_status));
  EXPECT_FALSE(has(Reason::tls_failure));
  // The echo check of the same target cannot end in access_not_enforced.
  EXPECT_EQ(std::count(c->probes[0].reasons.begin(), c->probes[0].reasons.end(), Reason::access_not_enforced), 0);
  // Default prefix.
  auto d = parse_config("[[dicom]]\nname = \"pacs\"\nhost = \"10.1.2.3\"\ncalled_ae_title = \"ARCHIVE\"\n"
                        "checks = [\"access\"]\n",
                        "t.toml");
  EXPECT_EQ(as_dicom(d->probes[0].make()).options().access.calling_ae_prefix, "PACSAGENT-");
}

TEST(DicomAccessTitle, SixteenValidCharactersPrefixedAndFreshEachTime) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    std::string t = random_ae_title("PACSAGENT-", "PACS_AGENT");
    ASSERT_EQ(t.size(), 16u) << t;
    EXPECT_EQ(t.rfind("PACSAGENT-", 0), 0u) << t;
    EXPECT_TRUE(valid_ae_title(t)) << t;
    for (char ch : t.substr(10)) EXPECT_TRUE(std::isupper(static_cast<unsigned char>(ch)) || std::isdigit(static_cast<unsigned char>(ch))) << t;
    seen.insert(t);
  }
  EXPECT_EQ(seen.size(), 200u) << "36^6 titles: 200 draws must not repeat";
  // An empty prefix: all 16 random; never the agent's own title.
  EXPECT_EQ(random_ae_title("", "X").size(), 16u);
  EXPECT_NE(random_ae_title("ABCDEFGHIJ", "ABCDEFGHIJ"), "ABCDEFGHIJ");
}

TEST(DicomConfig, ImageChecksWithEverySetting) {
  std::string toml =
      "[agent]\ncalling_ae_title = \"MONITOR\"\n"
      "[[dicom]]\nname = \"archive\"\nhost = \"127.0.0.1\"\ncalled_ae_title = \"ARCHIVE\"\n"
      "checks = [\"echo\", \"store\", \"retrieve\", \"commit\"]\n"
      "[dicom.store]\nuid_root = \"1.2.826.0.1.3680043.10.999\"\n"
      "cleanup = { type = \"orthanc\", url = \"http://127.0.0.1:8042\", username = \"agent\", "
      "password_file = \"/etc/pacs-agent/orthanc.pw\" }\n"
      "[dicom.retrieve]\nmethod = \"move\"\nmove_destination = \"PACS_AGENT\"\nlisten_port = 11113\n"
      "[dicom.commit]\nlisten_port = 11114\nlisten_address = \"127.0.0.1\"\n";
  auto c = parse_config(toml, "t.toml");
  ASSERT_EQ(c->probes.size(), 4u);
  EXPECT_EQ(c->probes[1].probe, "dicom_store");
  EXPECT_EQ(c->probes[2].probe, "dicom_retrieve");
  EXPECT_EQ(c->probes[3].probe, "dicom_commit");
  auto p = c->probes[2].make();
  const auto& o = as_dicom(p).options();
  ASSERT_TRUE(o.store);
  EXPECT_EQ(o.store->canary.uid_root, "1.2.826.0.1.3680043.10.999");
  EXPECT_EQ(o.store->canary.patient_id, "PACS-AGENT-CANARY");
  EXPECT_EQ(o.store->canary.cleanup.type, canary::Cleanup::Type::orthanc);
  EXPECT_EQ(o.retrieve.method, RetrieveOptions::Method::move);
  EXPECT_EQ(o.retrieve.scp.ae_title, "PACS_AGENT");
  EXPECT_EQ(o.retrieve.scp.listen_address, "0.0.0.0");
  EXPECT_EQ(o.retrieve.scp.listen_port, 11113);
  EXPECT_EQ(o.commit.scp.ae_title, "MONITOR") << "defaults to the calling AE title";
  EXPECT_EQ(o.commit.scp.listen_address, "127.0.0.1");
  EXPECT_EQ(o.commit.scp.listen_port, 11114);
  auto has = [](const ProbeSpec& s, Reason r) { return std::count(s.reasons.begin(), s.reasons.end(), r) == 1; };
  EXPECT_FALSE(has(c->probes[0], Reason::stored_not_found)) << "echo cannot produce it";
  EXPECT_TRUE(has(c->probes[1], Reason::stored_not_found));
  EXPECT_TRUE(has(c->probes[1], Reason::content_mismatch));
  EXPECT_FALSE(has(c->probes[1], Reason::inbound_timeout));
  EXPECT_TRUE(has(c->probes[2], Reason::inbound_timeout));
  EXPECT_TRUE(has(c->probes[2], Reason::io_error));
  EXPECT_TRUE(has(c->probes[3], Reason::commitment_failed));
  EXPECT_TRUE(has(c->probes[3], Reason::inbound_timeout));

  // retrieve with a fixed study needs no store.
  auto f = parse_config("[[dicom]]\nname = \"qc\"\nhost = \"h\"\ncalled_ae_title = \"A\"\nchecks = [\"retrieve\"]\n"
                        "[dicom.retrieve]\nstudy_uid = \"1.2.3.4\"\n",
                        "t.toml");
  auto fp = f->probes[0].make();
  EXPECT_EQ(as_dicom(fp).options().retrieve.study_uid, "1.2.3.4");
  EXPECT_FALSE(as_dicom(fp).options().store);
  EXPECT_FALSE(std::count(f->probes[0].reasons.begin(), f->probes[0].reasons.end(), Reason::inbound_timeout));
}

// The binary's --config.check refuses an image check without the settings
// that make it safe, naming file, line and key.
TEST(DicomConfig, ConfigCheckRefusesStoreWithoutUidRoot) {
  test::TempDir tmp;
  auto bad = tmp.write("bad.toml", "[[dicom]]\nname = \"archive\"\nhost = \"127.0.0.1\"\ncalled_ae_title = \"A\"\n"
                                   "checks = [\"store\"]\n[dicom.store]\ncleanup = { type = \"none\" }\n");
  std::string out;
  int rc = test::run_command({test::agent_binary(), "--config.check", "--config.file=" + bad.string()}, &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("bad.toml:6: dicom[0].store: missing required key \"uid_root\""), std::string::npos) << out;
  auto good = tmp.write("good.toml", "[[dicom]]\nname = \"archive\"\nhost = \"127.0.0.1\"\ncalled_ae_title = \"A\"\n"
                                     "checks = [\"store\"]\n[dicom.store]\nuid_root = \"1.2.3\"\n"
                                     "cleanup = { type = \"none\" }\n");
  EXPECT_EQ(test::run_command({test::agent_binary(), "--config.check", "--config.file=" + good.string()}, &out), 0)
      << out;
}

struct BadCase {
  const char* name;
  std::string body;  // lines after [[dicom]] name = "a" (line 1-2)
  std::string error;
};

class InvalidDicomConfig : public ::testing::TestWithParam<BadCase> {};

TEST_P(InvalidDicomConfig, GivesExactMessage) {
  const auto& c = GetParam();
  std::string toml = "[[dicom]]\nname = \"a\"\n" + c.body;
  try {
    parse_config(toml, "d.toml");
    FAIL() << "config was accepted:\n" << toml;
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), c.error);
  }
}

const std::string kBase = "host = \"127.0.0.1\"\ncalled_ae_title = \"ARCHIVE\"\n";  // lines 3-4

const BadCase kBad[] = {
    {"missing_host", "called_ae_title = \"A\"\n", "d.toml:1: dicom[0]: missing required key \"host\""},
    {"missing_called_ae", "host = \"127.0.0.1\"\n", "d.toml:1: dicom[0]: missing required key \"called_ae_title\""},
    {"empty_host", "host = \"\"\ncalled_ae_title = \"A\"\n", "d.toml:3: dicom[0].host: must not be empty"},
    {"ipv6_host", "host = \"::1\"\ncalled_ae_title = \"A\"\n",
     "d.toml:3: dicom[0].host: must be an IPv4 address or a host name (DCMTK 3.6.7 does not connect over IPv6)"},
    {"host_with_space", "host = \"a b\"\ncalled_ae_title = \"A\"\n",
     "d.toml:3: dicom[0].host: must be an IPv4 address or a host name"},
    {"port_zero", kBase + "port = 0\n", "d.toml:5: dicom[0].port: must be 1..65535"},
    {"port_too_big", kBase + "port = 70000\n", "d.toml:5: dicom[0].port: must be 1..65535"},
    {"port_string", kBase + "port = \"104\"\n", "d.toml:5: dicom[0].port: must be an integer"},
    {"called_ae_too_long", "host = \"h\"\ncalled_ae_title = \"ABCDEFGHIJKLMNOPQ\"\n",
     "d.toml:4: dicom[0].called_ae_title: must be 1..16 printable ASCII characters without backslash"},
    {"called_ae_backslash", "host = \"h\"\ncalled_ae_title = 'A\\B'\n",
     "d.toml:4: dicom[0].called_ae_title: must be 1..16 printable ASCII characters without backslash"},
    {"called_ae_spaces", "host = \"h\"\ncalled_ae_title = \"   \"\n",
     "d.toml:4: dicom[0].called_ae_title: must be 1..16 printable ASCII characters without backslash"},
    {"calling_ae_empty", kBase + "calling_ae_title = \"\"\n",
     "d.toml:5: dicom[0].calling_ae_title: must be 1..16 printable ASCII characters without backslash"},
    {"checks_empty", kBase + "checks = []\n",
     "d.toml:5: dicom[0].checks: must not be empty (valid: echo, find, worklist, store, retrieve, commit, access)"},
    {"checks_unknown", kBase + "checks = [\"echo\", \"move\"]\n",
     "d.toml:5: dicom[0].checks: unknown check \"move\" (valid: echo, find, worklist, store, retrieve, commit, access)"},
    {"checks_duplicate", kBase + "checks = [\"echo\", \"echo\"]\n", "d.toml:5: dicom[0].checks: duplicate check \"echo\""},
    {"checks_not_array", kBase + "checks = \"echo\"\n", "d.toml:5: dicom[0].checks: must be an array of strings"},
    {"find_without_check", kBase + "[dicom.find]\nlevel = \"STUDY\"\n",
     "d.toml:5: dicom[0].find: settings for \"find\" but \"find\" is not in checks"},
    {"worklist_without_check", kBase + "[dicom.worklist]\nkeys = {}\n",
     "d.toml:5: dicom[0].worklist: settings for \"worklist\" but \"worklist\" is not in checks"},
    {"access_settings_without_check", kBase + "[dicom.access]\ncalling_ae_prefix = \"X\"\n",
     "d.toml:5: dicom[0].access: settings for \"access\" but \"access\" is not in checks"},
    {"access_prefix_too_long", kBase + "checks = [\"access\"]\n[dicom.access]\ncalling_ae_prefix = \"PACS-AGENT-X\"\n",
     "d.toml:7: dicom[0].access.calling_ae_prefix: must be at most 10 characters (the rest of the 16-character AE "
     "title is random)"},
    {"access_prefix_space", kBase + "checks = [\"access\"]\n[dicom.access]\ncalling_ae_prefix = \"PACS AGENT\"\n",
     "d.toml:7: dicom[0].access.calling_ae_prefix: must be printable ASCII without spaces or backslash"},
    {"access_unknown_key", kBase + "checks = [\"access\"]\n[dicom.access]\ncalling_ae_title = \"X\"\n",
     "d.toml:7: dicom[0].access.calling_ae_title: unknown key"},
    {"find_bad_level", kBase + "checks = [\"find\"]\n[dicom.find]\nlevel = \"IMAGE\"\n",
     "d.toml:7: dicom[0].find.level: must be \"STUDY\", \"SERIES\" or \"PATIENT\""},
    {"find_bad_model", kBase + "checks = [\"find\"]\n[dicom.find]\nmodel = \"mwl\"\n",
     "d.toml:7: dicom[0].find.model: must be \"study_root\" or \"patient_root\""},
    {"find_patient_study_root", kBase + "checks = [\"find\"]\n[dicom.find]\nlevel = \"PATIENT\"\nmodel = \"study_root\"\n",
     "d.toml:8: dicom[0].find.model: level \"PATIENT\" needs model \"patient_root\" (Study Root has no PATIENT level)"},
    {"find_unknown_attribute", kBase + "checks = [\"find\"]\n[dicom.find]\nkeys = { StudyDat = \"today\" }\n",
     "d.toml:7: dicom[0].find.keys.StudyDat: unknown DICOM attribute \"StudyDat\" (not in the DCMTK data dictionary; "
     "use keywords such as StudyDate)"},
    {"find_key_not_string", kBase + "checks = [\"find\"]\n[dicom.find]\nkeys = { StudyDate = 20240101 }\n",
     "d.toml:7: dicom[0].find.keys.StudyDate: must be a string"},
    {"find_sequence_key", kBase + "checks = [\"find\"]\n[dicom.find]\nkeys = { ReferencedStudySequence = \"\" }\n",
     "d.toml:7: dicom[0].find.keys.ReferencedStudySequence: sequence attributes cannot be matching keys"},
    {"find_unknown_key", kBase + "checks = [\"find\"]\n[dicom.find]\nlevle = \"STUDY\"\n",
     "d.toml:7: dicom[0].find.levle: unknown key"},
    {"worklist_unknown_attribute", kBase + "checks = [\"worklist\"]\n[dicom.worklist]\nkeys = { StationAE = \"CT\" }\n",
     "d.toml:7: dicom[0].worklist.keys.StationAE: unknown DICOM attribute \"StationAE\" (not in the DCMTK data "
     "dictionary; use keywords such as StudyDate)"},
    {"tls_missing_ca", kBase + "[dicom.tls]\nverify_peer = true\n", "d.toml:5: dicom[0].tls: missing required key \"ca_file\""},
    {"tls_unreadable_ca", kBase + "[dicom.tls]\nca_file = \"/nonexistent/ca.pem\"\n",
     "d.toml:6: dicom[0].tls.ca_file: cannot read \"/nonexistent/ca.pem\""},
    {"tls_verify_not_bool", kBase + "[dicom.tls]\nca_file = \"/etc/hostname\"\nverify_peer = \"yes\"\n",
     "d.toml:7: dicom[0].tls.verify_peer: must be true or false"},
    {"tls_cert_without_key", kBase + "[dicom.tls]\nca_file = \"/etc/hostname\"\ncert_file = \"/etc/hostname\"\n",
     "d.toml:7: dicom[0].tls.cert_file: cert_file and key_file go together: set both or neither"},
    {"unknown_key", kBase + "called_ae = \"X\"\n", "d.toml:5: dicom[0].called_ae: unknown key"},
    // The image checks: opt-in, and refused without what makes them safe.
    {"store_without_table", kBase + "checks = [\"store\"]\n",
     "d.toml:5: dicom[0].checks: \"store\" writes a synthetic canary object into the archive and needs a "
     "[dicom.store] table with uid_root and cleanup"},
    {"store_without_uid_root", kBase + "checks = [\"store\"]\n[dicom.store]\ncleanup = { type = \"none\" }\n",
     "d.toml:6: dicom[0].store: missing required key \"uid_root\": the site's DICOM UID root under which the agent "
     "generates the canary's UIDs (e.g. \"1.2.826.0.1.3680043.10.999\")"},
    {"store_bad_uid_root", kBase + "checks = [\"store\"]\n[dicom.store]\nuid_root = \"1.2.3.\"\ncleanup = { type = \"none\" }\n",
     "d.toml:7: dicom[0].store.uid_root: must not end with a dot (the agent adds its own components)"},
    {"store_without_cleanup", kBase + "checks = [\"store\"]\n[dicom.store]\nuid_root = \"1.2.3\"\n",
     "d.toml:6: dicom[0].store: cleanup is required: cleanup = { type = \"orthanc\" | \"dcm4chee\" | \"none\", ... } "
     "(what deletes the canary studies again)"},
    {"store_table_without_check", kBase + "[dicom.store]\nuid_root = \"1.2.3\"\n",
     "d.toml:5: dicom[0].store: settings for \"store\" but \"store\" is not in checks"},
    {"retrieve_without_store", kBase + "checks = [\"retrieve\"]\n",
     "d.toml:5: dicom[0].checks: \"retrieve\" fetches the canary that the store check's settings describe: add "
     "\"store\" to checks (with [dicom.store]), or set retrieve.study_uid to a fixed study"},
    {"commit_without_store", kBase + "checks = [\"commit\"]\n",
     "d.toml:5: dicom[0].checks: \"commit\" asks for storage commitment of a canary that the store check's settings "
     "describe: add \"store\" to checks (with [dicom.store])"},
    {"retrieve_bad_method", kBase + "checks = [\"retrieve\"]\n[dicom.retrieve]\nmethod = \"pull\"\nstudy_uid = \"1.2.3\"\n",
     "d.toml:7: dicom[0].retrieve.method: must be \"get\" or \"move\""},
    {"retrieve_bad_study_uid", kBase + "checks = [\"retrieve\"]\n[dicom.retrieve]\nstudy_uid = \"1.2.03\"\n",
     "d.toml:7: dicom[0].retrieve.study_uid: must be a DICOM UID (digits and dots, at most 64 characters)"},
    {"move_without_port", kBase + "checks = [\"retrieve\"]\n[dicom.retrieve]\nmethod = \"move\"\nstudy_uid = \"1.2.3\"\n",
     "d.toml:6: dicom[0].retrieve: missing required key \"listen_port\": the port of the agent's storage SCP, where "
     "the archive connects back"},
    {"move_bad_destination", kBase + "checks = [\"retrieve\"]\n[dicom.retrieve]\nmethod = \"move\"\nstudy_uid = \"1.2.3\"\n"
     "move_destination = \"WAY_TOO_LONG_AE_TITLE\"\nlisten_port = 11113\n",
     "d.toml:9: dicom[0].retrieve.move_destination: must be 1..16 printable ASCII characters without backslash"},
    {"move_bad_listen_address", kBase + "checks = [\"retrieve\"]\n[dicom.retrieve]\nmethod = \"move\"\nstudy_uid = \"1.2.3\"\n"
     "listen_address = \"pacs-agent.local\"\nlisten_port = 11113\n",
     "d.toml:9: dicom[0].retrieve.listen_address: must be an IPv4 address of this host (0.0.0.0 = every interface)"},
    {"get_with_listen_port", kBase + "checks = [\"retrieve\"]\n[dicom.retrieve]\nstudy_uid = \"1.2.3\"\nlisten_port = 11113\n",
     "d.toml:8: dicom[0].retrieve.listen_port: only with method = \"move\""},
    {"commit_ae_without_port", kBase + "checks = [\"store\", \"commit\"]\n[dicom.store]\nuid_root = \"1.2.3\"\n"
     "cleanup = { type = \"none\" }\n[dicom.commit]\nae_title = \"AGENT\"\n",
     "d.toml:10: dicom[0].commit.ae_title: only with listen_port (the agent's SCP for reports on a new association)"},
    {"move_with_tls", kBase + "checks = [\"retrieve\"]\n[dicom.retrieve]\nmethod = \"move\"\nstudy_uid = \"1.2.3\"\n"
     "listen_port = 11113\n[dicom.tls]\nca_file = \"/etc/hostname\"\n",
     "d.toml:10: dicom[0].tls: the agent's storage SCP (retrieve method \"move\", commit.listen_port) does not speak "
     "DICOM-TLS; the archive would have to connect back in plain DICOM"},
};

INSTANTIATE_TEST_SUITE_P(Cases, InvalidDicomConfig, ::testing::ValuesIn(kBad),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(DicomToday, ExpandsOnlyTheWordToday) {
  EXPECT_EQ(expand_value("today", "20240229"), "20240229");
  EXPECT_EQ(expand_value("TODAY", "20240229"), "20240229");
  EXPECT_EQ(expand_value("20240101", "20240229"), "20240101");
  EXPECT_EQ(expand_value("today-", "20240229"), "today-");
  EXPECT_EQ(expand_value("", "20240229"), "");
}

TEST(DicomToday, IsTheLocalDate) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  EXPECT_EQ(today_dicom_date(), buf);
  EXPECT_EQ(today_dicom_date().size(), 8u);
}

struct ReasonCase {
  unsigned short module, code;
  const char* text;
  Phase phase;
  bool deadline;
  Reason want;
};

TEST(DicomReasons, MapsDcmtkConditions) {
  const ReasonCase cases[] = {
      {OFM_dcmnet, DULC_TCPINITERROR, "TCP Initialization Error: Connection refused", Phase::connect, false,
       Reason::connection_refused},
      {OFM_dcmnet, DULC_TCPINITERROR, "TCP Initialization Error: No route to host", Phase::connect, false,
       Reason::connection_refused},
      {OFM_dcmnet, DULC_TCPINITERROR, "TCP Initialization Error: Operation now in progress (Timeout)", Phase::connect,
       false, Reason::connect_timeout},
      {OFM_dcmnet, DULC_TCPINITERROR, "TCP Initialization Error: Interrupted system call", Phase::connect, true,
       Reason::connect_timeout},
      {OFM_dcmnet, DULC_UNKNOWNHOST, "Attempt to connect to unknown host", Phase::connect, false, Reason::dns_failure},
      {OFM_dcmnet, DULC_ASSOCIATIONREJECTED, "DUL Association Rejected", Phase::associate, false,
       Reason::association_rejected},
      {OFM_dcmnet, DULC_ASSOCIATIONREJECTED, "DUL Association Rejected", Phase::associate, true,
       Reason::association_rejected},
      {OFM_dcmnet, DULC_READTIMEOUT, "DUL network read timeout", Phase::associate, false, Reason::association_timeout},
      {OFM_dcmnet, DULC_READTIMEOUT, "DUL network read timeout", Phase::release, false, Reason::association_timeout},
      {OFM_dcmnet, DULC_READTIMEOUT, "DUL network read timeout", Phase::dimse, false, Reason::dimse_timeout},
      {OFM_dcmnet, DIMSEC_NODATAAVAILABLE, "DIMSE No data available", Phase::dimse, false, Reason::dimse_timeout},
      {OFM_dcmnet, DULC_PEERABORTEDASSOCIATION, "Peer aborted Association", Phase::dimse, false,
       Reason::association_aborted},
      {OFM_dcmnet, DULC_PEERABORTEDASSOCIATION, "Peer aborted Association", Phase::associate, false,
       Reason::association_aborted},
      // The watchdog shut the socket: DCMTK sees a closed peer, we report the timeout.
      {OFM_dcmnet, DULC_PEERABORTEDASSOCIATION, "Peer aborted Association", Phase::associate, true,
       Reason::association_timeout},
      {OFM_dcmnet, DULC_PEERABORTEDASSOCIATION, "Peer aborted Association", Phase::dimse, true, Reason::dimse_timeout},
      {OFM_dcmnet, DULC_NETWORKCLOSED, "DUL network closed", Phase::dimse, false, Reason::association_aborted},
      {OFM_dcmnet, DULC_TCPIOERROR, "TCP I/O Error (Connection reset by peer)", Phase::dimse, false,
       Reason::association_aborted},
      {OFM_dcmnet, DULC_TLSERROR, "DUL secure transport layer: certificate verify failed", Phase::associate, false,
       Reason::tls_failure},
      {OFM_dcmtls, 0x0886, "certificate verify failed", Phase::associate, false, Reason::tls_failure},
      {OFM_dcmtls, 0x0886, "OpenSSL I/O error", Phase::associate, true, Reason::association_timeout},
      {OFM_dcmnet, DULC_UNRECOGNIZEDPDUTYPE, "Unrecognized PDU type", Phase::associate, false, Reason::protocol_error},
      {OFM_dcmnet, DULC_ILLEGALPDU, "DUL Illegal or ill-formed PDU", Phase::associate, false, Reason::protocol_error},
      {OFM_dcmnet, DULC_ILLEGALPDULENGTH, "DUL Illegal PDU Length", Phase::associate, false, Reason::protocol_error},
      {OFM_dcmnet, DULC_UNEXPECTEDPDU, "Received unexpected PDU", Phase::dimse, false, Reason::protocol_error},
      {OFM_dcmnet, DIMSEC_UNEXPECTEDRESPONSE, "DIMSE unexpected response", Phase::dimse, false, Reason::protocol_error},
      {OFM_dcmnet, DIMSEC_BADDATA, "DIMSE bad data", Phase::dimse, false, Reason::internal},
      {OFM_dcmdata, 1, "dcmdata error", Phase::dimse, false, Reason::internal},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(classify_condition(c.module, c.code, c.text, c.phase, c.deadline), c.want)
        << c.text << " in phase " << to_string(c.phase) << " deadline=" << c.deadline;
  }
}

TEST(DicomReasons, RejectMessageNamesStandardValues) {
  EXPECT_EQ(reject_message(1, 1, 0x0107),
            "association rejected: result=1 (permanent) source=1 (service user) reason=0x0107 (called AE title not "
            "recognized)");
  EXPECT_EQ(reject_message(1, 1, 0x0101),
            "association rejected: result=1 (permanent) source=1 (service user) reason=0x0101 (no reason given)");
  EXPECT_EQ(reject_message(2, 3, 0x0302),
            "association rejected: result=2 (transient) source=3 (service provider, presentation) reason=0x0302 "
            "(local limit exceeded)");
  EXPECT_EQ(reject_reason_text(0x0103), "calling AE title not recognized");
  EXPECT_EQ(reject_reason_text(0x0202), "protocol version not supported");
  EXPECT_EQ(reject_reason_text(0x0301), "temporary congestion");
  EXPECT_EQ(reject_reason_text(0x0104), "reserved");
}

}  // namespace
}  // namespace pacs::dicom
