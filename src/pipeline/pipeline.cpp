// The facade: composes the modules in flow order. The only place that knows all of them.
#include <medinfer/calibration.hpp>
#include <medinfer/error.hpp>
#include <medinfer/pipeline.hpp>
#include <medinfer/preprocess.hpp>
#include <medinfer/risk.hpp>

#include "audit/audit_internal.hpp"
#include "calibration/calibration_json.hpp"
#include "pipeline/batcher.hpp"
#include "core/json_util.hpp"
#include "core/log_internal.hpp"
#include "core/sha256.hpp"
#include "preprocess/spec_json.hpp"
#include "risk/risk_json.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>

namespace medinfer {
namespace {

using Clock = std::chrono::steady_clock;

// Content fingerprint: pixel type, dimensions and pixel bytes (not the header, which holds PHI and
// changes on de-identification, nor the path).
std::string fingerprint(const Image& image) {
  detail::Sha256 h;
  const std::string head = fmt::format("medinfer-image-v1 {} {}x{}x{}\n", to_string(image.pixel_type()),
                                       image.width(), image.height(), image.channels());
  h.update(head.data(), head.size());
  h.update(image.data(), image.size_bytes());
  return h.hex_digest();
}

// True when every sample has the same value (a blank or saturated frame): a quality failure.
bool is_constant(const Image& image) {
  const std::size_t bps = bytes_per_sample(image.pixel_type());
  const auto* p = static_cast<const unsigned char*>(image.data());
  const std::size_t n = image.size_bytes();
  for (std::size_t i = bps; i < n; i += bps) {
    if (std::memcmp(p, p + i, bps) != 0) return false;
  }
  return true;
}

// The identifiers an inference record may carry: pseudonyms, or the UIDs on opt-in.
struct InputRefs {
  std::string study, series, instance;
};

std::string redact(std::string message, const std::string& path) {
  if (path.empty()) return message;
  for (auto pos = message.find(path); pos != std::string::npos; pos = message.find(path, pos + 7)) {
    message.replace(pos, path.size(), "<input>");
  }
  return message;
}

// Fills the fields every record carries and hands it to the sink. kAuditFailed if the sink fails.
void emit(const PipelineOptions& options, audit::Record& record) {
  if (!options.audit_sink) return;
  audit::detail::stamp(record);
  record.actor = options.actor;
  try {
    options.audit_sink->write(record);
  } catch (const std::exception& e) {  // medinfer::Error included
    throw Error(ErrorCode::kAuditFailed, std::string("audit sink failed; the result was not released: ") + e.what());
  } catch (...) {
    throw Error(ErrorCode::kAuditFailed, "audit sink failed with an unknown exception; the result was not released");
  }
}

}  // namespace

struct Pipeline::Impl {
  ModelPackage package;
  preprocess::Spec spec;
  std::string spec_sha256;
  calibration::Calibrator calibrator;
  risk::Policy policy;
  std::optional<Engine> engine;
  PipelineOptions options;
  std::unique_ptr<detail::Batcher> batcher;  // after engine: destroyed first

  Result predict_image(const Image& image, const preprocess::Context& context, const risk::InputFacts& facts,
                       const std::string& input_sha256, const InputRefs& refs, Clock::time_point start) const;
  InputRefs refs_of(const dicom::ImageHeader& header) const;
  audit::Record base_record(audit::EventType type) const;
  audit::Record inference_record(const InputRefs& refs) const;
  void audit_error(const Error& e, const std::string& path, const InputRefs& refs, Clock::time_point start) const;
};

Pipeline Pipeline::open(const std::string& package_dir, PipelineOptions options) {
  try {
    auto impl = std::unique_ptr<Impl>(new Impl{ModelPackage::open(package_dir, options.package), {}, {}, {}, {}, std::nullopt, options, nullptr});
    const std::string where = impl->package.directory() + "/manifest.json";
    const detail::Json manifest = detail::parse_json(impl->package.manifest_text(), where);
    const detail::Json& steps = detail::require_member(manifest, "preprocessing", where);
    impl->spec = preprocess::detail::spec_from_json(steps, detail::field_path(where, "preprocessing"));
    impl->spec_sha256 = detail::sha256_hex(steps.dump());  // nlohmann::json sorts keys: canonical
    impl->calibrator = calibration::detail::calibration_from_json(
        detail::require_member(manifest, "calibration", where), detail::field_path(where, "calibration"),
        static_cast<std::size_t>(impl->package.output_count()))[0];
    impl->policy = risk::detail::policy_from_json(detail::require_member(manifest, "risk", where),
                                                  detail::field_path(where, "risk"));
    impl->engine.emplace(Engine::open(impl->package, impl->options.engine));
    if (impl->options.batching.max_batch_size > 1) {
      impl->batcher = std::make_unique<detail::Batcher>(*impl->engine, impl->package.input_shape(),
                                                        impl->options.batching);
    }
    audit::Record opened = impl->base_record(audit::EventType::kModelOpened);
    opened.outcome = "ok";
    opened.detail = "package " + impl->package.directory() + " on " + impl->options.engine.device;
    emit(impl->options, opened);
    return Pipeline(std::move(impl));
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kAuditFailed) throw;
    audit::Record refused;
    refused.event = audit::EventType::kModelRefused;
    refused.outcome = "error";
    refused.error_code = to_string(e.code());
    refused.error_message = e.what();
    refused.detail = "package " + package_dir;
    emit(options, refused);
    throw;
  }
}

audit::Record Pipeline::Impl::base_record(audit::EventType type) const {
  audit::Record r;
  r.event = type;
  r.model = package.identity();
  r.preprocessing_sha256 = spec_sha256;
  return r;
}

audit::Record Pipeline::Impl::inference_record(const InputRefs& refs) const {
  audit::Record r = base_record(audit::EventType::kInference);
  r.study_ref = refs.study;
  r.series_ref = refs.series;
  r.instance_ref = refs.instance;
  return r;
}

InputRefs Pipeline::Impl::refs_of(const dicom::ImageHeader& h) const {
  if (options.include_identifiers) return {h.study_instance_uid, h.series_instance_uid, h.sop_instance_uid};
  if (options.pseudonym_key.empty()) return {};
  auto pseudonym = [&](const std::string& uid) {
    return uid.empty() ? std::string() : detail::hmac_sha256_hex(options.pseudonym_key, uid);
  };
  return {pseudonym(h.study_instance_uid), pseudonym(h.series_instance_uid), pseudonym(h.sop_instance_uid)};
}

void Pipeline::Impl::audit_error(const Error& e, const std::string& path, const InputRefs& refs,
                                 Clock::time_point start) const {
  audit::Record r = inference_record(refs);
  r.outcome = "error";
  r.error_code = to_string(e.code());
  r.error_message = redact(e.what(), path);
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  emit(options, r);
}

Result Pipeline::Impl::predict_image(const Image& image, const preprocess::Context& context,
                                     const risk::InputFacts& facts, const std::string& input_sha256,
                                     const InputRefs& refs, Clock::time_point start) const {
  const Tensor input = preprocess::apply(spec, image, context);
  const Tensor logits = batcher ? batcher->run(input) : engine->run(input);
  const double logit = logits.data.at(0);
  if (!std::isfinite(logit)) {
    throw Error(ErrorCode::kInternal, package.identity().name + ": the model produced a non-finite logit");
  }
  risk::Score score = risk::assess(policy, calibrator.apply(logit));
  // Input rules come first: an input outside the gate is not scored as if it were in.
  std::vector<std::pair<std::string, std::string>> input_rules;
  const risk::GateResult gate = risk::check_quality(policy.quality_gate, facts);
  if (!gate.rule.empty()) input_rules.emplace_back(gate.rule, gate.reason);
  if (is_constant(image)) input_rules.emplace_back("input_constant", "the input image is constant (no contrast)");
  if (!input_rules.empty()) {
    const risk::Score model_verdict = score;
    score.indeterminate = false;
    score.reason.clear();
    for (const auto& [rule, reason] : input_rules) score = risk::mark_indeterminate(std::move(score), rule, reason);
    if (model_verdict.indeterminate) {
      score = risk::mark_indeterminate(std::move(score), model_verdict.rule, model_verdict.reason);
    }
  }

  Result r;
  r.probability = score.probability;
  r.raw_score = logit;
  r.confidence = score.confidence;
  r.tier = score.tier;
  r.escalate = score.escalate;
  r.indeterminate = score.indeterminate;
  r.reason = score.reason;
  r.rule = score.rule;
  if (policy.operating_point) r.operating_point = policy.operating_point->name;
  r.operating_point_positive = score.operating_point_positive;
  r.prediction_set = score.prediction_set;
  r.model = package.identity();
  r.input_sha256 = input_sha256;
  r.preprocessing_sha256 = spec_sha256;
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

  audit::Record rec = inference_record(refs);
  rec.input_sha256 = r.input_sha256;
  rec.outcome = r.indeterminate ? "indeterminate" : "ok";
  rec.raw_score = r.raw_score;
  rec.probability = r.probability;
  rec.tier = r.tier;
  rec.escalate = r.escalate;
  rec.reason = r.reason;
  rec.rule = r.rule;
  rec.latency_ms = r.latency_ms;
  emit(options, rec);
  return r;
}

Result Pipeline::predict(const std::string& dicom_path) const {
  const auto start = Clock::now();
  std::optional<dicom::Instance> instance;
  try {
    instance = dicom::read_instance(dicom_path, impl_->spec.read_options(impl_->options.read));
  } catch (const Error& e) {
    impl_->audit_error(e, dicom_path, {}, start);
    throw;
  }
  const InputRefs refs = impl_->refs_of(instance->header);
  const dicom::ImageHeader& h = instance->header;
  const risk::InputFacts facts{h.modality, h.body_part_examined, h.photometric_interpretation,
                               instance->image.spacing()[0], instance->image.spacing()[1], h.rows, h.columns};
  const preprocess::Context context = preprocess::context_from(h);
  try {
    return impl_->predict_image(instance->image, context, facts, fingerprint(instance->image), refs, start);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) impl_->audit_error(e, dicom_path, refs, start);
    throw;
  }
}

Result Pipeline::predict(const Image& image) const {
  const auto start = Clock::now();
  try {
    const risk::InputFacts facts{{}, {}, {}, image.spacing()[0], image.spacing()[1],
                                 static_cast<std::uint32_t>(image.height()), static_cast<std::uint32_t>(image.width())};
    return impl_->predict_image(image, {}, facts, fingerprint(image), {}, start);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) impl_->audit_error(e, {}, {}, start);
    throw;
  }
}

void Pipeline::record_event(audit::EventType type, const std::string& detail) const {
  if (type != audit::EventType::kConfigurationChange && type != audit::EventType::kOverride) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("record_event: hosts record configuration_change or override, not ") + audit::to_string(type));
  }
  audit::Record r = impl_->base_record(type);
  r.outcome = "ok";
  r.detail = detail;
  emit(impl_->options, r);
}

const ModelIdentity& Pipeline::model() const noexcept { return impl_->package.identity(); }

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;
Pipeline::~Pipeline() = default;

}  // namespace medinfer
