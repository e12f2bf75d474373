// Deleting a canary study again over the archive's REST API.
//
// Orthanc: POST /tools/lookup with the StudyInstanceUID -> the study's
// Orthanc ID -> DELETE /studies/{id}. Never /tools/find by patient: only the
// study this run generated is touched.
//
// dcm4chee-arc-light (IocmRS, under the archive AE's /rs base):
//   POST   {base}/studies/{uid}/reject/{code}   200 {"count":n} | 404 none to reject
//   DELETE {base}/studies/{uid}                 204 | 404 unknown | 403 study not (fully) rejected
// Rejection first: dcm4chee deletes only studies whose instances are all
// rejected. A study already rejected by an earlier, half-finished cleanup
// answers 404 to the reject and is deleted all the same.
#include <nlohmann/json.hpp>

#include "probes/lib/canary/canary.h"

namespace pacs::canary {

namespace {

// The HTTP client writes its own transcript steps with the full path, which
// here carries the canary's UID: run it without a transcript and note the
// steps ourselves with "{study}" in place of the UID.
ProbeContext quiet(const ProbeContext& ctx) {
  ProbeContext q = ctx;
  q.transcript = nullptr;
  return q;
}

std::string shown_status(const http::Response& r) {
  return r.status > 0 ? "HTTP " + std::to_string(r.status) : std::string(to_string(r.reason));
}

CleanupOutcome failed(const http::Response& r, const std::string& what) {
  CleanupOutcome o;
  o.status = CleanupOutcome::Status::failed;
  o.reason = r.reason == Reason::none ? Reason::protocol_error : r.reason;
  // Not r.message: it names the URL, whose path carries the UID.
  o.message = what + " failed: " + shown_status(r);
  return o;
}

CleanupOutcome orthanc(const Cleanup& c, const std::string& uid, const ProbeContext& ctx) {
  http::Client client(c.http);
  const ProbeContext q = quiet(ctx);
  http::Request lookup;
  lookup.method = "POST";
  lookup.url = c.url + "/tools/lookup";
  lookup.headers = {"Accept: application/json", "Content-Type: text/plain"};
  lookup.body = uid;
  auto r = client.perform(lookup, q);
  ctx.note("cleanup", "POST /tools/lookup {study} -> " + shown_status(r));
  if (!r.ok) return failed(r, "Orthanc /tools/lookup");
  std::string id;
  try {
    auto j = nlohmann::json::parse(r.body);
    if (!j.is_array()) throw std::runtime_error("not an array");
    for (const auto& e : j) {
      if (e.is_object() && e.value("Type", "") == "Study" && e.contains("ID") && e["ID"].is_string()) {
        id = e["ID"].get<std::string>();
      }
    }
  } catch (const std::exception&) {
    CleanupOutcome o;
    o.reason = Reason::protocol_error;
    o.message = "Orthanc /tools/lookup answered something that is not a JSON array of resources";
    return o;
  }
  if (id.empty()) return {CleanupOutcome::Status::not_found, Reason::none, "Orthanc does not know the canary study"};
  auto d = client.perform({"DELETE", c.url + "/studies/" + http::escape(id), {"Accept: application/json"}, {}}, q);
  ctx.note("cleanup", "DELETE /studies/{orthanc-id} -> " + shown_status(d));
  if (d.status == 404) return {CleanupOutcome::Status::not_found, Reason::none, "Orthanc deleted nothing (404)"};
  if (!d.ok) return failed(d, "Orthanc DELETE study");
  return {CleanupOutcome::Status::deleted, Reason::none, "deleted from Orthanc"};
}

CleanupOutcome dcm4chee(const Cleanup& c, const std::string& uid, const ProbeContext& ctx) {
  http::Client client(c.http);
  const ProbeContext q = quiet(ctx);
  const std::string study = c.url + "/studies/" + http::escape(uid);
  // '^' is not allowed in a URL path: percent-encoded (JAX-RS decodes it).
  auto caret = c.reject_code.find('^');
  std::string code = http::escape(c.reject_code.substr(0, caret)) + "%5E" + http::escape(c.reject_code.substr(caret + 1));
  auto r = client.perform({"POST", study + "/reject/" + code, {"Accept: application/json"}, {}}, q);
  ctx.note("cleanup", "POST /studies/{study}/reject/" + c.reject_code + " -> " + shown_status(r));
  bool rejected_before = r.status == 404;  // nothing (left) to reject
  if (!r.ok && !rejected_before) return failed(r, "dcm4chee reject");
  auto d = client.perform({"DELETE", study, {"Accept: application/json"}, {}}, q);
  ctx.note("cleanup", "DELETE /studies/{study} -> " + shown_status(d));
  if (d.status == 404) {
    return {CleanupOutcome::Status::not_found, Reason::none,
            rejected_before ? "dcm4chee does not know the canary study" : "dcm4chee rejected it but found no study to delete"};
  }
  if (d.status == 403) {
    CleanupOutcome o = failed(d, "dcm4chee DELETE study");
    o.message += " (the study still has instances that are not rejected)";
    return o;
  }
  if (!d.ok) return failed(d, "dcm4chee DELETE study");
  return {CleanupOutcome::Status::deleted, Reason::none, "rejected and deleted from dcm4chee"};
}

}  // namespace

std::string_view to_string(CleanupOutcome::Status s) noexcept {
  switch (s) {
    case CleanupOutcome::Status::deleted: return "deleted";
    case CleanupOutcome::Status::not_found: return "not_found";
    case CleanupOutcome::Status::failed: return "failed";
    case CleanupOutcome::Status::disabled: return "disabled";
  }
  return "failed";
}

CleanupOutcome cleanup_study(const Cleanup& c, const std::string& study_uid, const ProbeContext& ctx) {
  switch (c.type) {
    case Cleanup::Type::none: return {CleanupOutcome::Status::disabled, Reason::none, "cleanup disabled"};
    case Cleanup::Type::orthanc: return orthanc(c, study_uid, ctx);
    case Cleanup::Type::dcm4chee: return dcm4chee(c, study_uid, ctx);
  }
  return {};
}

}  // namespace pacs::canary
