// The image checks of the dicom kind (image_checks.cpp): store (C-STORE a
// fresh canary, find it back, clean up, count the canary studies), retrieve
// (C-GET or C-MOVE of the canary or of a fixed study, compared with what was
// stored) and commit (storage commitment of a stored canary); and the
// access-control canary (access_check.cpp), which shares their helpers.
#pragma once

#include <deque>
#include <string>

#include "probes/dicom/association.h"
#include "probes/dicom/dicom_probe.h"

namespace pacs::dicom {

// Phase durations, reject details and the TLS certificate of `a` (dicom_probe.cpp).
void add_association_samples(ProbeResult& r, const DicomAssociation& a);

// `pending` holds canary study UIDs whose cleanup failed in earlier runs of
// this probe instance; runs retry them and drop them once deleted.
ProbeResult run_store(const DicomOptions& o, const ProbeContext& ctx, std::deque<std::string>& pending);
ProbeResult run_retrieve(const DicomOptions& o, const ProbeContext& ctx, std::deque<std::string>& pending);
ProbeResult run_commit(const DicomOptions& o, const ProbeContext& ctx, std::deque<std::string>& pending);

// The access-control canary (access_check.cpp): C-ECHO under a random
// calling AE title; succeeds when the peer refuses it.
ProbeResult run_access(const DicomOptions& o, const ProbeContext& ctx);

}  // namespace pacs::dicom
