// Internal: what the pipeline's files share — an opened model, what is being served, and Pipeline::Impl.
// The pipeline composes the modules and holds no rule of its own: package validity is package::detail,
// probabilities are calibration's, the verdict order is risk's, pseudonyms are dicom's.
#pragma once

#include <medinfer/engine.hpp>
#include <medinfer/pipeline.hpp>

#include "inference/batcher.hpp"
#include "package/sections.hpp"

#include <chrono>
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

  // pipeline.cpp
  Result predict_image(const Model& model, Arm arm, const Image& image, const preprocess::Context& context,
                       risk::InputFacts facts, const std::string& input_sha256, const InputRefs& refs,
                       Clock::time_point start) const;
};

/// "name version (sha256 prefix)", as configuration-change records name a model.
std::string describe(const ModelIdentity& id);

}  // namespace medinfer
