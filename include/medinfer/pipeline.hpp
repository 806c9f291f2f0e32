// Pipeline: the one-call facade. DICOM file -> preprocessing -> model -> calibration -> risk -> audit.
#pragma once

#include <medinfer/audit.hpp>
#include <medinfer/dicom.hpp>
#include <medinfer/export.hpp>
#include <medinfer/finding.hpp>
#include <medinfer/image.hpp>
#include <medinfer/engine.hpp>
#include <medinfer/model_package.hpp>
#include <medinfer/series.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
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
  /// The input's Study / Series / SOP Instance UIDs, so a host can map the result back to its source
  /// (empty for an image given as pixels; a series result has no SOP Instance UID). They identify a
  /// patient's study: audit records keep pseudonyms of them instead (PipelineOptions::pseudonym_key).
  std::string study_instance_uid, series_instance_uid, sop_instance_uid;
  std::string preprocessing_sha256;  ///< SHA-256 of the applied preprocessing spec (canonical JSON)
  double latency_ms = 0.0;
  /// How many images the model ran together to produce this result: the dynamic batcher's batch
  /// (PipelineOptions::batching) or predict_many's; 1 when it ran alone. For a host's metrics (how well
  /// batching fills); not part of to_json.
  int batch_size = 1;
};

/// The result as one JSON object on one line, the form every host prints or serves (the CLI's
/// `predict` lines, Python's Result.to_json): "probability", "raw_score", "confidence", "tier",
/// "escalate", "indeterminate", "reason" (when indeterminate), "rule", "operating_point": {"name",
/// "positive"} (with an operating point), "prediction_set" (with a conformal rule), "label",
/// "findings": [{"label", "probability", "raw_score", "confidence", "tier", "escalate",
/// "indeterminate", "rule", "reason" (when indeterminate)}], "model": {"name", "version", "sha256"},
/// "arm" (during an A/B test), "input_sha256", "study_instance_uid", "series_instance_uid",
/// "sop_instance_uid" (empty strings when unknown), "latency_ms". docs/schemas/result.schema.json is its
/// JSON Schema.
MEDINFER_API std::string to_json(const Result& result);

/// One input of Pipeline::predict_many: a DICOM file, a DICOM Part 10 object in memory, or an image
/// (pixels in modality units, as Pipeline::predict(const Image&) takes). A value type: cheap to copy
/// (in-memory bytes and images are shared, not copied).
struct MEDINFER_API Input {
  enum class Kind { kPath, kDicomBytes, kImage };
  Kind kind = Kind::kPath;
  std::string path;  ///< kPath: the file. kDicomBytes: the name used in errors and audit (may be empty)
  std::shared_ptr<const std::string> bytes;  ///< kDicomBytes: the Part 10 object
  Image image;                               ///< kImage
  std::string routing_key;                   ///< kImage: A/B routing key (empty: the pixels' SHA-256)
  /// kPath / kDicomBytes: the frame to read (-1: the package's own "frame" step, else frame 0).
  int frame = -1;
  /// The host's id of the request this input came with (an HTTP X-Request-Id): recorded in its audit
  /// record ("request_id"). At most 128 printable ASCII characters, no spaces (else kInvalidArgument); empty: none.
  std::string request_id;

  static Input file(std::string path, int frame = -1);
  static Input dicom(std::shared_ptr<const std::string> part10_bytes, std::string name = {});
  static Input pixels(Image image, std::string routing_key = {});
};

/// What Inputs::resolve made of the inputs: every unit to read, and what was left out.
struct ResolvedInputs {
  /// Each given input in order, a directory replaced by its DICOM files (dicom::find_files: sorted
  /// by path, recursively unless FindOptions says otherwise). Files, Part 10 bytes and pixels as given.
  std::vector<Input> inputs;
  /// Files found under the directories and left out (not DICOM, broken links, ...), with the reason.
  /// A skipped file is reported, never a failure.
  std::vector<dicom::SkippedFile> skipped;
  /// The directories searched, as given.
  std::vector<std::string> searched;
};

/// The inputs of one unit of work: files, directories, DICOM Part 10 objects in memory and pixel
/// arrays, resolved by one rule (directories searched by dicom::find_files: recursively, symbolic
/// links followed with loop protection, non-DICOM files skipped and listed). What the CLI, the HTTP
/// service, the DICOM node and Python hand the library. A value type.
class MEDINFER_API Inputs {
 public:
  Inputs() = default;
  /// Files and directories.
  Inputs(const std::vector<std::string>& paths);  // NOLINT: implicit, a list of paths is the usual form
  Inputs(std::vector<Input> inputs);              // NOLINT
  /// A file or a directory (a directory's `frame` and `request_id` apply to every file found in it).
  Inputs& add(std::string path, int frame = -1);
  /// A file, a DICOM Part 10 object in memory or an image.
  Inputs& add(Input input);
  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }
  const std::vector<Input>& entries() const noexcept { return entries_; }

  /// How directories are searched.
  dicom::FindOptions find;

  /// Resolves the directories. Throws Error: kInvalidArgument (no inputs at all), kNotFound when
  /// nothing is left to read (naming every directory searched, how, and how many files were skipped
  /// and why), kResourceLimit (FindOptions::max_files).
  ResolvedInputs resolve() const;

 private:
  std::vector<Input> entries_;
};

/// What became of one input: its Result, or the Error it ended in (never both).
struct Outcome {
  std::size_t index = 0;  ///< the input's position in the list given to predict_many
  std::optional<Result> result;
  std::optional<Error> error;
  bool ok() const noexcept { return result.has_value(); }
};

/// Cancels a running predict_many (or predict_series/predict_study) from any thread. Copies share one
/// flag. Inputs already being read or run finish (and are audited); the rest end in kCancelled.
class CancelToken {
 public:
  CancelToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
  void cancel() const noexcept { flag_->store(true, std::memory_order_relaxed); }
  bool cancelled() const noexcept { return flag_->load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

/// How predict_many runs. Workers read, decode and preprocess inputs and, whenever `batch_size`
/// prepared images are waiting, one of them runs the model on the batch, so every core is either
/// decoding or inferring and no core waits on another's thread pool (each forward runs on its own
/// thread: no OpenMP spin-waiting on a busy machine).
struct ManyOptions {
  unsigned workers = 0;   ///< threads (0: one per core; the caller's thread is one of them)
  /// Images per model run, 1..256. 4: measured best or within 3 % of it here for a small CNN and a
  /// ResNet-18-class model at 224 x 224 (docs/benchmarks.md); larger batches gained nothing on CPU.
  int batch_size = 4;
  /// Inputs read but not yet delivered, at most (0: 2 x batch_size + 2 x workers): what bounds memory
  /// however many inputs there are. 1..100,000.
  std::size_t max_in_flight = 0;
  /// true: outcomes are delivered in input order; false: as they complete (Outcome::index says which).
  bool ordered = true;
  /// Called with every outcome, one call at a time (never concurrently), on one of the workers. When
  /// set, predict_many keeps no outcomes (it returns an empty vector): memory stays flat for any
  /// number of inputs. Exceptions it throws stop the run and are rethrown by predict_many.
  std::function<void(Outcome&&)> on_outcome;
  /// Called after each delivered outcome with (delivered, total), one call at a time.
  std::function<void(std::size_t, std::size_t)> progress;
  CancelToken cancel;
};

/// A prediction for a whole series. Its top-level Result fields are the series finding (findings
/// per label, model, input_sha256 = SHA-256 over the slices' input hashes in order); `latency_ms` is
/// the whole series'.
struct SeriesResult : Result {
  struct Evidence {
    std::string label;
    std::size_t slice_index = 0;  ///< position along the slice normal (0 = first slice of the series)
    std::string sop_instance_uid;
    double probability = 0.0;     ///< the slice's calibrated probability for the label
  };
  std::string modality;
  /// "max", "mean", "noisy_or", "top_k_mean" (2D packages), or "volume" (a 3D package, run once).
  std::string aggregation;
  std::size_t slices = 0;           ///< slices that were predicted (2D) or went into the volume (3D)
  std::size_t failed_slices = 0;    ///< 2D: slices whose prediction failed (each also a warning)
  std::vector<Evidence> evidence;   ///< 2D: per label, the highest-probability slices, best first
  std::vector<dicom::SeriesWarning> warnings;  ///< geometry and unreadable slices
};

/// A series predict_study did not run, and why (no selection rule matched, too few slices, ...).
struct SkippedSeries {
  std::string series_instance_uid;
  std::string modality;
  std::string series_description;
  std::string reason;
};

struct StudyResult {
  std::string study_instance_uid;
  std::vector<SeriesResult> series;   ///< the series predicted, in Series Instance UID order
  std::vector<SkippedSeries> skipped; ///< every other series of the study, with the reason
  /// Series that were selected but whose prediction failed, with the error.
  std::vector<std::pair<SkippedSeries, Error>> failed;
  std::vector<dicom::SkippedFile> skipped_files;  ///< files the scan could not index
  double latency_ms = 0.0;
};

/// One JSON line for a series result: every field of to_json(Result) (its study and series UIDs;
/// sop_instance_uid empty) plus "modality", "aggregation", "slices", "failed_slices", "evidence": [{label,
/// slice_index, sop_instance_uid, probability}], "warnings": [{kind, message}].
MEDINFER_API std::string to_json(const SeriesResult& result);
/// One JSON line for a study: {"study_instance_uid", "series": [series objects as above], "skipped":
/// [{series_instance_uid, modality, series_description, reason}], "failed": [{series_instance_uid,
/// modality, series_description, error: {code, message}}], "skipped_files": [{path, code, reason}],
/// "latency_ms"}.
MEDINFER_API std::string to_json(const StudyResult& result);

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

/// Opens a model package once and predicts many inputs. Move-only. Every predict call is thread-safe: one
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
  /// Predicts one Input (a file, Part 10 bytes in memory, or pixels), as predict(path) does: through
  /// the dynamic batcher when PipelineOptions::batching merges concurrent calls, audited with the
  /// input's request_id. What a service calls per request.
  Result predict(const Input& input) const;

  /// Predicts many inputs in one call, overlapping decoding and preprocessing with batched inference
  /// on `options.workers` threads, with at most `options.max_in_flight` inputs held at once. Each
  /// input gets one outcome (its Result, or its Error: one bad file never stops the others), each
  /// probability bit-identical to predict() on the same input, and each audited as predict() audits
  /// it (inputs never started because of cancellation end in kCancelled and are not audited: nothing
  /// was read). Returns the outcomes in input order (or completion order), or nothing when
  /// options.on_outcome takes them. Throws Error(kInvalidArgument) for bad options, and what
  /// on_outcome or progress threw.
  std::vector<Outcome> predict_many(const std::vector<Input>& inputs, const ManyOptions& options = {}) const;

  /// Predicts one series. The files (or every file under a directory, which must hold one series)
  /// are ordered along the slice normal as dicom::read_series orders them (localizers, strays of
  /// another orientation or size left out, with warnings). A 2D package runs on every slice (through
  /// predict_many) and the manifest's "series" section says how slice scores combine into the series
  /// finding and how many evidence slices to report; a 3D package (input.shape [1, C, D, H, W]) runs
  /// once on the volume through the volume preprocessing. Audited: each slice's prediction (2D) and
  /// the series result. Throws Error: kInvalidDicom when no slice could be predicted, kInvalidArgument
  /// for a multi-class 2D package without a series section, what read_series throws for a 3D package.
  SeriesResult predict_series(const std::vector<std::string>& files, const ManyOptions& options = {}) const;
  SeriesResult predict_series(const std::string& directory, const ManyOptions& options = {}) const;

  /// Predicts a study: scans the files (or a directory tree), groups them by series, selects the
  /// series the package's "series_selection" rules accept (modality, body part, orientation, image
  /// type, slice thickness and count ranges; localizers never), predicts each, and lists every other
  /// series with the reason. Files of several studies: kInvalidArgument (use predict_study per study).
  StudyResult predict_study(const std::vector<std::string>& files, const ManyOptions& options = {}) const;
  StudyResult predict_study(const std::string& directory, const ManyOptions& options = {}) const;

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

  /// Records a host event in the audit trail: `type` is kConfigurationChange, kOverride or
  /// kDicomTransfer (a DICOM host's instances received or reports sent; `outcome` kError for a
  /// failed transfer); anything else: kInvalidArgument. `detail` says what happened (no patient data;
  /// at most 4096 bytes, else kInvalidArgument). Throws kAuditFailed if the sink fails. Thread-safe.
  void record_event(audit::EventType type, const std::string& detail,
                    audit::Outcome outcome = audit::Outcome::kOk) const;

 private:
  struct Impl;
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace medinfer
