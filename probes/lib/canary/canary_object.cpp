// The canary object: fresh UIDs, the dataset, Part-10 bytes, comparison.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <random>
#include <stdexcept>

#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcostrmb.h"
#include "dcmtk/dcmdata/dcuid.h"

#include "probes/lib/canary/canary.h"

namespace pacs::canary {

namespace {

constexpr int kSide = 16;  // 16x16 pixels, 8 bits: 256 bytes of pixel data

bool digits_only(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Components of a UID: digits, no leading zero unless the component is "0".
bool valid_components(std::string_view s) {
  if (s.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view c = s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!digits_only(c)) return false;
    if (c.size() > 1 && c[0] == '0') return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::string local_stamp(const char* fmt) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

void put(DcmDataset& d, const DcmTagKey& tag, const std::string& value) {
  OFCondition c = d.putAndInsertString(tag, value.c_str());
  if (c.bad()) throw std::runtime_error(std::string("canary: cannot set ") + DcmTag(tag).getTagName() + ": " + c.text());
}

void put16(DcmDataset& d, const DcmTagKey& tag, Uint16 v) {
  OFCondition c = d.putAndInsertUint16(tag, v);
  if (c.bad()) throw std::runtime_error(std::string("canary: cannot set ") + DcmTag(tag).getTagName() + ": " + c.text());
}

std::string string_of(DcmItem& item, const DcmTagKey& tag) {
  OFString v;
  if (item.findAndGetOFStringArray(tag, v).bad()) return {};
  return v.c_str();
}

}  // namespace

bool valid_uid(std::string_view uid) { return uid.size() <= 64 && valid_components(uid); }

std::optional<std::string> uid_root_problem(std::string_view root) {
  if (root.empty()) return "must not be empty";
  if (root.size() > kUidRootMax) {
    return "must be at most " + std::to_string(kUidRootMax) + " characters (the agent appends up to " +
           std::to_string(kUidSuffixMax) + " to make each UID; UIDs are at most 64)";
  }
  if (root.back() == '.') return "must not end with a dot (the agent adds its own components)";
  if (!valid_components(root)) {
    return "must be a DICOM UID root: numeric components separated by dots, without leading zeros "
           "(e.g. \"1.2.826.0.1.3680043.10.999\")";
  }
  if (root[0] > '2' || (root.size() > 1 && root[1] != '.')) return "must start with 0, 1 or 2 (an ISO/ITU-T arc)";
  return std::nullopt;
}

Uids fresh_uids(std::string_view root) {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t r;
  {
    std::lock_guard lk(mu);
    r = rng();
  }
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  // "<root>.<k>.<µs since 1970>.<1..999999 random>", k = 1 study, 2 series,
  // 3 instance: at most 2 + 17 + 7 = kUidSuffixMax characters until the
  // year 2286. Two canaries collide only within the same microsecond *and*
  // with the same random number.
  std::uint64_t rand6 = r % 999999 + 1;
  std::string tail = "." + std::to_string(us) + "." + std::to_string(rand6);
  std::string base(root);
  return {base + ".1" + tail, base + ".2" + tail, base + ".3" + tail};
}

std::string_view to_string(Cleanup::Type t) noexcept {
  switch (t) {
    case Cleanup::Type::none: return "none";
    case Cleanup::Type::orthanc: return "orthanc";
    case Cleanup::Type::dcm4chee: return "dcm4chee";
  }
  return "none";
}

Object::Object(Object&&) noexcept = default;
Object& Object::operator=(Object&&) noexcept = default;
Object::~Object() = default;

Object make_object(const Settings& s, std::string_view series_description) {
  Object o;
  o.uids_ = fresh_uids(s.uid_root);
  o.sop_class_uid_ = UID_SecondaryCaptureImageStorage;
  o.patient_id_ = s.patient_id;
  o.pixels_.resize(kSide * kSide);
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x)  // a gradient with a bright diagonal: easy to recognise in a viewer
      o.pixels_[static_cast<size_t>(y * kSide + x)] = x == y ? 255 : static_cast<unsigned char>((x + y) * 7);

  auto d = std::make_unique<DcmDataset>();
  const std::string date = local_stamp("%Y%m%d"), time = local_stamp("%H%M%S");
  put(*d, DCM_SpecificCharacterSet, "ISO_IR 100");
  put(*d, DCM_SOPClassUID, o.sop_class_uid_);
  put(*d, DCM_SOPInstanceUID, o.uids_.instance);
  put(*d, DCM_StudyInstanceUID, o.uids_.study);
  put(*d, DCM_SeriesInstanceUID, o.uids_.series);
  put(*d, DCM_PatientName, s.patient_name);
  put(*d, DCM_PatientID, s.patient_id);
  put(*d, DCM_PatientBirthDate, "");
  put(*d, DCM_PatientSex, "O");
  put(*d, DCM_StudyDate, date);
  put(*d, DCM_StudyTime, time);
  put(*d, DCM_ContentDate, date);
  put(*d, DCM_ContentTime, time);
  put(*d, DCM_InstanceCreationDate, date);
  put(*d, DCM_InstanceCreationTime, time);
  put(*d, DCM_AccessionNumber, "");
  put(*d, DCM_ReferringPhysicianName, "");
  put(*d, DCM_StudyID, "CANARY");
  put(*d, DCM_StudyDescription, std::string(kStudyDescription));
  put(*d, DCM_SeriesDescription, std::string(series_description));
  put(*d, DCM_Modality, "OT");
  put(*d, DCM_ConversionType, "SYN");  // synthetic image
  put(*d, DCM_Manufacturer, "pacs-agent");
  put(*d, DCM_SeriesNumber, "1");
  put(*d, DCM_InstanceNumber, "1");
  put(*d, DCM_PatientOrientation, "");
  put(*d, DCM_BurnedInAnnotation, "NO");
  put(*d, DCM_ImageComments,
      "Synthetic test object written by pacs-agent to verify that this archive stores and returns images. "
      "It contains no patient data and is deleted by the agent after each check.");
  put16(*d, DCM_SamplesPerPixel, 1);
  put(*d, DCM_PhotometricInterpretation, "MONOCHROME2");
  put16(*d, DCM_Rows, kSide);
  put16(*d, DCM_Columns, kSide);
  put16(*d, DCM_BitsAllocated, 8);
  put16(*d, DCM_BitsStored, 8);
  put16(*d, DCM_HighBit, 7);
  put16(*d, DCM_PixelRepresentation, 0);
  OFCondition c = d->putAndInsertUint8Array(DCM_PixelData, o.pixels_.data(), static_cast<unsigned long>(o.pixels_.size()));
  if (c.bad()) throw std::runtime_error(std::string("canary: cannot set PixelData: ") + c.text());
  o.dataset_ = std::move(d);
  return o;
}

std::string Object::part10() const {
  DcmFileFormat ff(dataset_.get());  // copies the dataset
  std::string out;
  std::vector<char> buf(16384);
  DcmOutputBufferStream stream(buf.data(), static_cast<offile_off_t>(buf.size()));
  ff.transferInit();
  OFCondition c = EC_StreamNotifyClient;
  while (c == EC_StreamNotifyClient) {
    c = ff.write(stream, EXS_LittleEndianExplicit, EET_ExplicitLength, nullptr, EGL_recalcGL);
    void* p = nullptr;
    offile_off_t n = 0;
    stream.flushBuffer(p, n);
    out.append(static_cast<const char*>(p), static_cast<size_t>(n));
  }
  ff.transferEnd();
  if (c.bad()) throw std::runtime_error(std::string("canary: cannot encode the Part-10 object: ") + c.text());
  stream.flush();
  void* p = nullptr;
  offile_off_t n = 0;
  stream.flushBuffer(p, n);
  out.append(static_cast<const char*>(p), static_cast<size_t>(n));
  return out;
}

std::vector<std::string> Object::differences(DcmItem& received) const {
  std::vector<std::string> diff;
  auto check = [&](const DcmTagKey& tag, const std::string& want) {
    if (string_of(received, tag) != want) diff.emplace_back(DcmTag(tag).getTagName());
  };
  check(DCM_SOPInstanceUID, uids_.instance);
  check(DCM_StudyInstanceUID, uids_.study);
  check(DCM_SeriesInstanceUID, uids_.series);
  check(DCM_SOPClassUID, sop_class_uid_);
  check(DCM_PatientID, patient_id_);
  // 8-bit pixels arrive as OB (explicit VR) or OW (implicit VR, where DCMTK
  // keeps them as 16-bit words in host order): compare the bytes either way.
  DcmElement* e = nullptr;
  const unsigned char* bytes = nullptr;
  if (received.findAndGetElement(DCM_PixelData, e).good() && e) {
    Uint8* b8 = nullptr;
    Uint16* b16 = nullptr;
    if (e->getUint8Array(b8).good() && b8) bytes = b8;
    else if (e->getUint16Array(b16).good() && b16) bytes = reinterpret_cast<const unsigned char*>(b16);
  }
  if (!bytes || e->getLength() < pixels_.size() || !std::equal(pixels_.begin(), pixels_.end(), bytes)) {
    diff.emplace_back("PixelData");
  }
  return diff;
}

}  // namespace pacs::canary
