// Which model produced a result, and what kind of task it solves: the names every module shares
// (results, audit records, calibration, reports). Standard library only.
#pragma once

#include <medinfer/export.hpp>

#include <string>

namespace medinfer {

/// Which model produced a result: every Result and audit record carries it.
struct ModelIdentity {
  std::string name;
  std::string version;
  /// SHA-256 (hex) of manifest.json. The manifest pins the SHA-256 of every other file in the
  /// package, so this one hash identifies the model, its preprocessing, calibration and risk policy.
  std::string sha256;
};

/// Which arm of an A/B test served a request (Pipeline::start_ab_test); kNone outside a test.
enum class Arm { kNone, kPrimary, kCandidate };
/// "", "primary", "candidate".
MEDINFER_API const char* to_string(Arm arm) noexcept;
/// The inverse of to_string. Throws Error(kInvalidArgument).
MEDINFER_API Arm parse_arm(const std::string& name);

/// What the model outputs, and so how its outputs become findings.
/// | task | outputs | probability of label k |
/// |---|---|---|
/// | binary | 1 logit, 1 label | calibrator(logit) |
/// | multi-label | one logit per label (labels are independent) | calibrator_k(logit_k) |
/// | multi-class | one logit per label (exactly one is true) | softmax(logits / T)_k |
enum class Task { kBinary, kMultiLabel, kMultiClass };
/// "binary", "multi-label", "multi-class".
MEDINFER_API const char* to_string(Task task) noexcept;

}  // namespace medinfer
