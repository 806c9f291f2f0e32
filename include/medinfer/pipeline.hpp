// Pipeline: the one-call facade. DICOM file -> preprocessing -> model -> calibration -> risk -> audit.
#pragma once

#include <medinfer/audit.hpp>
#include <medinfer/dicom.hpp>
#include <medinfer/export.hpp>
#include <medinfer/finding.hpp>
#include <medinfer/image.hpp>
#include <medinfer/engine.hpp>
#include <medinfer/model_package.hpp>

#include <memory>
#include <string>
#include <vector>

namespace medinfer {

struct PipelineOptions {
  EngineOptions engine;
  BatchingOptions batching;
  /// Trusted signing keys and whether a signature is required (see ModelPackage::open).
  PackageOptions package;
  dicom::ReadOptions read;
  /// Receives one record per predict() call (failed ones included), and model_opened/model_refused
  /// from open(). May be null (no audit).
  std::shared_ptr<audit::Sink> audit_sink;
  /// Who is using this pipeline, as recorded in every audit record. An empty user_id becomes the OS
  /// account of this process (else "unknown"); an id longer than 256 bytes is refused at open.
  audit::Actor actor;
  /// Key for the study/series/instance pseudonyms in audit records (dicom::pseudonymize: HMAC-SHA256
  /// of each UID). At least 16 bytes (Pipeline::open refuses a shorter one with kInvalidArgument);
  /// empty: the references are left out. Never logged. audit::open_log derives one from its keyring.
  std::string pseudonym_key;
  /// Opt-in: record the raw Study/Series/SOP Instance UIDs instead of pseudonyms. UIDs identify a
  /// patient's study; leave this off unless the audit store is allowed to hold them.
  bool include_identifiers = false;
};

/// The outcome of one prediction. A Result is its primary finding (the Finding fields at the top
/// level) plus its context: for a binary package the only finding; with several labels, the escalating
/// finding with the highest probability, or when none escalates the finding with the highest
/// probability (ties: the first label). `findings` holds every label's finding in the package's label
/// order (the primary one among them), so a host reading only the top level never misses an escalation.
struct Result : Finding {
  std::string operating_point;   ///< the primary finding's policy's operating point name; empty without one
  std::vector<Finding> findings;  ///< one per label, in the package's label order
  ModelIdentity model;
  Arm arm = Arm::kNone;          ///< during an A/B test, the arm that served this request
  std::string input_sha256;      ///< SHA-256 of the decoded pixels (what the audit record names)
  std::string preprocessing_sha256;  ///< SHA-256 of the applied preprocessing spec (canonical JSON)
  double latency_ms = 0.0;
};

/// The result as one JSON object on one line, the form every host prints or serves (the CLI's
/// `predict` lines, Python's Result.to_json): "probability", "raw_score", "confidence", "tier",
/// "escalate", "indeterminate", "reason" (when indeterminate), "rule", "operating_point": {"name",
/// "positive"} (with an operating point), "prediction_set" (with a conformal rule), "label",
/// "findings": [{"label", "probability", "raw_score", "confidence", "tier", "escalate",
/// "indeterminate", "rule", "reason" (when indeterminate)}], "model": {"name", "version", "sha256"},
/// "arm" (during an A/B test), "input_sha256", "latency_ms". docs/schemas/result.schema.json is its
/// JSON Schema.
MEDINFER_API std::string to_json(const Result& result);

/// Which models a pipeline serves now (see Pipeline::swap_model, start_ab_test).
struct Deployment {
  ModelIdentity primary;
  /// During an A/B test: the candidate and the fraction of routing keys sent to it; else empty and 0.
  ModelIdentity candidate;
  double candidate_fraction = 0.0;
};

/// The A/B bucket of a routing key, in [0, 1): the first 8 bytes of SHA-256("medinfer-ab-v1:" + key)
/// as a big-endian integer divided by 2^64. A request goes to the candidate when its bucket is below
/// the candidate fraction, so the same study always lands on the same arm, on every host and across
/// restarts, and raising the fraction only moves studies from primary to candidate.
MEDINFER_API double routing_bucket(const std::string& key);

/// Opens a model package once and predicts many inputs. Move-only. predict() is thread-safe: one
/// Pipeline may be shared by many host threads, and the model it serves may be swapped or A/B-tested
/// while they call it.
class MEDINFER_API Pipeline {
 public:
  /// Opens and verifies the package as verify_package does (integrity, signature, and the
  /// preprocessing, calibration and risk sections for its task), then loads the model. Throws Error
  /// (see ModelPackage::open, Engine::open; kInvalidArgument for an invalid manifest section, naming
  /// the field, or a pseudonym key shorter than 16 bytes). Audits model_opened, or model_refused
  /// before rethrowing.
  static Pipeline open(const std::string& package_dir, PipelineOptions options = {});

  Pipeline(Pipeline&&) noexcept;
  Pipeline& operator=(Pipeline&&) noexcept;
  ~Pipeline();

  /// Reads a DICOM file and predicts. Throws Error (see dicom::read_instance; kAuditFailed when the
  /// audit sink fails). Every call, failed or not, is audited when a sink is set.
  Result predict(const std::string& dicom_path) const;
  /// Predicts an image already in memory (pixels in modality units, e.g. HU). Only the size and
  /// spacing parts of the package's quality gate apply: there is no header to check the rest against.
  /// During an A/B test the image is routed by `routing_key` (e.g. its Study Instance UID), or by its
  /// pixels' SHA-256 when the key is empty.
  Result predict(const Image& image, const std::string& routing_key = {}) const;

  /// The exact float32 tensor the primary model would receive for this file (shape {1, C, H, W}):
  /// read with the package's read options, then its preprocessing spec with the file's VOI window, as
  /// predict() does. Not audited (no prediction is made). Throws what predict() throws for the input.
  Tensor prepare(const std::string& dicom_path) const;

  /// The primary model's identity.
  ModelIdentity model() const;
  /// The primary model's package (labels, task, intended use, ...), shared with the calls serving it.
  std::shared_ptr<const ModelPackage> package() const;

  /// Opens and verifies `package_dir` with this pipeline's options while the current model keeps
  /// serving, then makes it the primary model in one atomic step: calls already running finish on the
  /// old model (which is released when the last of them returns), later calls use the new one. A
  /// running A/B test keeps its candidate and split. On any error the current model stays and the
  /// error is thrown (audited as model_refused). Audits model_opened and a configuration_change naming
  /// both versions. Thread-safe; swaps are serialised. Returns the new primary's identity.
  ModelIdentity swap_model(const std::string& package_dir);
  /// Opens `candidate_dir` (as swap_model does) and sends `candidate_fraction` (0..1) of routing keys to
  /// it: a file's Study Instance UID (its SOP Instance UID when the study UID is empty), see
  /// routing_bucket. Replaces a running test's candidate. kInvalidArgument for a fraction outside [0, 1].
  ModelIdentity start_ab_test(const std::string& candidate_dir, double candidate_fraction);
  /// Ends the A/B test: everything goes to the primary again. No-op without a test.
  void stop_ab_test();
  /// Ends the A/B test by making the candidate the primary. kInvalidArgument without a test.
  ModelIdentity promote_candidate();
  Deployment deployment() const;

  /// Records a host event in the audit trail: `type` is kConfigurationChange or kOverride (anything
  /// else: kInvalidArgument); `detail` says what changed (no patient data; at most 4096 bytes, else
  /// kInvalidArgument). Throws kAuditFailed if the sink fails. Thread-safe.
  void record_event(audit::EventType type, const std::string& detail) const;

 private:
  struct Impl;
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace medinfer
