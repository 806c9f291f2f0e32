// Internal: what the pipeline's files share — an opened model, what is being served, and Pipeline::Impl.
// The pipeline composes the modules and holds no rule of its own: package validity is package::detail,
// probabilities are calibration's, the verdict order is risk's, pseudonyms are dicom's.
#pragma once

#include <medinfer/engine.hpp>
#include <medinfer/pipeline.hpp>

#include "inference/batcher.hpp"
#include "package/sections.hpp"

#include <medinfer/risk.hpp>

#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace medinfer {

using Clock = std::chrono::steady_clock;

// One opened package and everything a prediction on it needs. Immutable once built; shared by the calls
// serving it, so a swap never pulls it from under a running call.
struct Model {
  std::shared_ptr<const ModelPackage> package;
  package::detail::Sections sections;
  std::optional<Engine> engine;
  std::unique_ptr<detail::Batcher> batcher;  // after engine: destroyed first
};

// What the pipeline serves now; replaced whole (never edited) under Pipeline::Impl::deploy_mutex.
struct Serving {
  std::shared_ptr<const Model> primary;
  std::shared_ptr<const Model> candidate;  // during an A/B test
  double fraction = 0.0;
};

// The identifiers an inference record may carry: pseudonyms, or the UIDs on opt-in.
struct InputRefs {
  std::string study, series, instance;
  std::vector<audit::InputWarning> warnings;  // the header's, path redacted
  std::string request_id;  // the host's (Input::request_id)
};

// One input read, routed and preprocessed: what the model runs on, and what finishing its result
// needs. Built by Impl::prepare, consumed by Impl::finish (one input, or one row of a batch).
struct Prepared {
  std::shared_ptr<const Model> model;
  Arm arm = Arm::kNone;
  Tensor input;  // [1, C, H, W]
  risk::InputFacts facts;
  std::string input_sha256;
  InputRefs refs;
  std::string path;  // for error redaction: the file, or the in-memory object's name
  std::string study_instance_uid, series_instance_uid, sop_instance_uid;  // raw: for the Result, never audited
  Clock::time_point start;
  std::size_t index = 0;  // predict_many: the input's position
};

struct Pipeline::Impl {
  PipelineOptions options;
  std::mutex deploy_mutex;                 // serialises swap / A/B changes
  std::shared_ptr<const Serving> serving;  // read with std::atomic_load, replaced with std::atomic_store

  std::shared_ptr<const Serving> now() const { return std::atomic_load(&serving); }
  void publish(std::shared_ptr<const Serving> next) { std::atomic_store(&serving, std::move(next)); }
  // The arm for `key`: the candidate when the key's bucket is below the fraction (deployment.cpp).
  static std::pair<std::shared_ptr<const Model>, Arm> route(const Serving& s, const std::string& key);

  // audit_records.cpp
  std::shared_ptr<const Model> open_audited(const std::string& package_dir) const;
  InputRefs refs_of(const dicom::ImageHeader& header, const std::string& path) const;
  audit::Record base_record(const Model& model, audit::EventType type) const;
  audit::Record inference_record(const Model& model, Arm arm, const InputRefs& refs) const;
  void audit_result(const Model& model, const Result& result, const InputRefs& refs) const;
  void audit_error(const Model& model, Arm arm, const Error& e, const std::string& path, const InputRefs& refs,
                   Clock::time_point start) const;
  void audit_change(const Model& model, const std::string& detail) const;
  void emit(audit::Record& record) const;

  // pipeline.cpp. prepare and finish audit their own failures (except kAuditFailed) and rethrow.
  Prepared prepare(const Serving& serving, const Input& input, Clock::time_point start) const;
  // The result for `p` from its row of logits (output_count values, finite: Engine checked them).
  Result finish(const Prepared& p, const float* logits, int batch_size = 1) const;
  // The model run for one prepared input (through the dynamic batcher when configured and
  // `through_batcher`; predict_many batches itself), then finish. A failed run is audited.
  Result run_one(const Prepared& p, bool through_batcher = true) const;

  // many.cpp
  // `pinned`: every input on this deployment (a series is never split across a swap); null: now()'s.
  std::vector<Outcome> predict_many(const std::vector<Input>& inputs, const ManyOptions& options,
                                    std::shared_ptr<const Serving> pinned) const;
  void audit_series(const Model& model, const SeriesResult& result, const InputRefs& refs) const;
  // series.cpp
  SeriesResult predict_series(const std::vector<std::string>& files, const ManyOptions& options) const;
};

/// The finding the top-level fields show: the escalating one with the highest probability, else the
/// highest probability; ties go to the first label.
std::size_t primary_finding(const std::vector<Finding>& findings);
/// Fills the Result fields of `r` from its findings (the primary one on top) and the model.
void compose(Result& r, const Model& model, Arm arm, std::vector<Finding> findings, std::string input_sha256,
             Clock::time_point start);
/// Every label's Finding from one input's logits (output_count values): the package's calibration, then
/// each label's risk policy on `facts`, the label and its raw score.
std::vector<Finding> findings_of(const Model& model, const std::vector<float>& logits, const risk::InputFacts& facts);
/// The quality facts of an input with this header and pixel spacing {x, y} (mm).
risk::InputFacts facts_of(const dicom::ImageHeader& header, const std::array<double, 2>& spacing);
/// Throws Error(kInvalidArgument) for a 3D package: it predicts series (predict_series), not images.
void require_2d(const Model& model);
/// True when a model input is constant (every value within 1e-6 of the others) after preprocessing.
bool is_constant(const Tensor& input);

/// Throws Error(kInvalidArgument) naming the field for ManyOptions out of range.
void check_many_options(const ManyOptions& options);

/// "name version (sha256 prefix)", as configuration-change records name a model.
std::string describe(const ModelIdentity& id);

}  // namespace medinfer
