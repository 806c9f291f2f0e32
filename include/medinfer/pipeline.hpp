// Pipeline: the one-call facade. DICOM file -> preprocessing -> model -> calibration -> risk -> audit.
#pragma once

#include <medinfer/audit.hpp>
#include <medinfer/dicom.hpp>
#include <medinfer/export.hpp>
#include <medinfer/image.hpp>
#include <medinfer/model.hpp>

#include <memory>
#include <string>
#include <vector>

namespace medinfer {

/// The optional in-process dynamic batcher: single-image predict() calls from many threads are
/// merged into one model run of up to `max_batch_size` images, waiting at most `max_delay_us` after
/// the first request of a batch. At most `max_queue` requests wait; beyond that predict() fails at
/// once with kOverloaded (nothing is queued unboundedly). Off when max_batch_size <= 1.
struct BatchingOptions {
  int max_batch_size = 0;   ///< 0 or 1: off; else 2..256
  int max_delay_us = 2000;  ///< 0..1,000,000
  int max_queue = 256;      ///< 1..100,000
};

struct PipelineOptions {
  EngineOptions engine;
  BatchingOptions batching;
  /// Trusted signing keys and whether a signature is required (see ModelPackage::open).
  PackageOptions package;
  dicom::ReadOptions read;
  /// Receives one record per predict() call (failed ones included), and model_opened/model_refused
  /// from open(). May be null (no audit).
  std::shared_ptr<audit::Sink> audit_sink;
  /// Who is using this pipeline, as recorded in every audit record.
  audit::Actor actor;
  /// Key for the study/series/instance pseudonyms in audit records (HMAC-SHA256 of each UID). Empty:
  /// the references are left out. Never logged.
  std::string pseudonym_key;
  /// Opt-in: record the raw Study/Series/SOP Instance UIDs instead of pseudonyms. UIDs identify a
  /// patient's study; leave this off unless the audit store is allowed to hold them.
  bool include_identifiers = false;
};

/// The outcome of one prediction.
struct Result {
  double probability = 0.0;    ///< calibrated p(positive), in [0, 1]
  double raw_score = 0.0;      ///< the model's logit before calibration
  double confidence = 0.0;     ///< max(probability, 1 - probability)
  std::string tier;            ///< the risk tier's name, or "indeterminate"
  bool escalate = false;       ///< probability >= the package's escalation threshold
  bool indeterminate = false;
  std::string reason;          ///< why indeterminate
  /// Which rule decided the tier: "tier_cutpoints", "confidence_threshold", "conformal_set",
  /// "quality_gate.<field>" (modality, body_part, photometric, pixel_spacing_mm, rows, columns) or
  /// "input_constant".
  std::string rule;
  std::string operating_point;            ///< the policy's operating point name; empty without one
  bool operating_point_positive = false;  ///< with an operating point: probability >= its threshold
  std::vector<std::string> prediction_set;  ///< with a conformal rule: subset of {"positive", "negative"}
  ModelIdentity model;
  std::string input_sha256;    ///< SHA-256 of the decoded pixels (what the audit record names)
  std::string preprocessing_sha256;  ///< SHA-256 of the applied preprocessing spec (canonical JSON)
  double latency_ms = 0.0;
};

/// Opens a model package once and predicts many inputs. Move-only. predict() is thread-safe: one
/// Pipeline may be shared by many host threads.
class MEDINFER_API Pipeline {
 public:
  /// Opens and verifies the package, parses its preprocessing, calibration and risk policy, and loads
  /// the model. Throws Error (see ModelPackage::open, Engine::open; kInvalidArgument for an invalid
  /// manifest section, naming the field). Audits model_opened, or model_refused before rethrowing.
  static Pipeline open(const std::string& package_dir, PipelineOptions options = {});

  Pipeline(Pipeline&&) noexcept;
  Pipeline& operator=(Pipeline&&) noexcept;
  ~Pipeline();

  /// Reads a DICOM file and predicts. Throws Error (see dicom::read_instance; kAuditFailed when the
  /// audit sink fails). Every call, failed or not, is audited when a sink is set.
  Result predict(const std::string& dicom_path) const;
  /// Predicts an image already in memory (pixels in modality units, e.g. HU). Only the size and
  /// spacing parts of the package's quality gate apply: there is no header to check the rest against.
  Result predict(const Image& image) const;

  const ModelIdentity& model() const noexcept;

  /// Records a host event in the audit trail: `type` is kConfigurationChange or kOverride (anything
  /// else: kInvalidArgument); `detail` says what changed (no patient data). Throws kAuditFailed if the
  /// sink fails. Thread-safe.
  void record_event(audit::EventType type, const std::string& detail) const;

 private:
  struct Impl;
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace medinfer
