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
#include <algorithm>
#include <mutex>
#include <optional>
#include <tuple>

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

// One opened package and everything a prediction on it needs. Immutable once built; shared by the calls
// serving it, so a swap never pulls it from under a running call.
struct Model {
  std::shared_ptr<const ModelPackage> package;
  preprocess::Spec spec;
  std::string spec_sha256;
  // Binary / multi-label: one per label. Multi-class: one temperature for all logits (then softmax).
  std::vector<calibration::Calibrator> calibrators;
  std::vector<risk::Policy> policies;  // one per label
  std::optional<Engine> engine;
  std::unique_ptr<detail::Batcher> batcher;  // after engine: destroyed first
};

// What the pipeline serves now; replaced whole (never edited) under Pipeline::Impl::deploy_mutex.
struct Serving {
  std::shared_ptr<const Model> primary;
  std::shared_ptr<const Model> candidate;  // during an A/B test
  double fraction = 0.0;
};

namespace {

// The manifest sections the pipeline interprets, parsed and validated into `model`.
void load_sections(const ModelPackage& package, Model& model) {
  const std::size_t labels = package.labels().size();
  const std::string where = package.directory() + "/manifest.json";
  const detail::Json manifest = detail::parse_json(package.manifest_text(), where);
  const detail::Json& steps = detail::require_member(manifest, "preprocessing", where);
  model.spec = preprocess::detail::spec_from_json(steps, detail::field_path(where, "preprocessing"));
  model.spec_sha256 = detail::sha256_hex(steps.dump());  // nlohmann::json sorts keys: canonical
  const detail::Json& calibration = detail::require_member(manifest, "calibration", where);
  const std::string calibration_where = detail::field_path(where, "calibration");
  if (package.task() == Task::kMultiClass) {
    model.calibrators = calibration::detail::calibration_from_json(calibration, calibration_where, 1);
    if (model.calibrators[0].method() != calibration::Method::kTemperature) {
      throw Error(ErrorCode::kInvalidArgument,
                  calibration_where + ": a multi-class model is calibrated by one temperature over all logits "
                                      "(softmax(z / T)), not '" + calibration::to_string(model.calibrators[0].method()) + "'");
    }
  } else {
    model.calibrators = calibration::detail::calibration_from_json(calibration, calibration_where, labels);
  }
  model.policies =
      risk::detail::policies_from_json(detail::require_member(manifest, "risk", where), detail::field_path(where, "risk"), labels);
}

std::shared_ptr<const Model> open_model(const std::string& package_dir, const PipelineOptions& options) {
  auto model = std::make_shared<Model>();
  model->package = std::make_shared<const ModelPackage>(ModelPackage::open(package_dir, options.package));
  load_sections(*model->package, *model);
  model->engine.emplace(Engine::open(*model->package, options.engine));
  if (options.batching.max_batch_size > 1) {
    model->batcher = std::make_unique<detail::Batcher>(*model->engine, model->package->input_shape(), options.batching);
  }
  return model;
}

// Calibrated probability per label.
std::vector<double> probabilities(const Model& model, const std::vector<float>& logits) {
  std::vector<double> p(logits.size());
  if (model.package->task() == Task::kMultiClass) {
    const double t = model.calibrators[0].parameters().at(0);
    double top = -INFINITY;
    for (float z : logits) top = std::max(top, static_cast<double>(z) / t);
    double sum = 0.0;
    for (std::size_t k = 0; k < logits.size(); ++k) sum += p[k] = std::exp(static_cast<double>(logits[k]) / t - top);
    for (double& v : p) v /= sum;
  } else {
    for (std::size_t k = 0; k < logits.size(); ++k) p[k] = model.calibrators[k].apply(logits[k]);
  }
  return p;
}

Finding finding_of(const std::string& label, double raw_score, const risk::Score& score) {
  Finding f;
  f.label = label;
  f.probability = score.probability;
  f.raw_score = raw_score;
  f.confidence = score.confidence;
  f.tier = score.tier;
  f.escalate = score.escalate;
  f.indeterminate = score.indeterminate;
  f.reason = score.reason;
  f.rule = score.rule;
  f.operating_point_positive = score.operating_point_positive;  // false without an operating point
  f.prediction_set = score.prediction_set;
  return f;
}

// The finding the top-level fields show: the escalating one with the highest probability, else the
// highest probability; ties go to the first label.
std::size_t primary_finding(const std::vector<Finding>& findings) {
  std::size_t best = 0;
  for (std::size_t k = 1; k < findings.size(); ++k) {
    const Finding& a = findings[k];
    const Finding& b = findings[best];
    if (a.escalate != b.escalate ? a.escalate : a.probability > b.probability) best = k;
  }
  return best;
}

bool same_read(const dicom::ReadOptions& a, const dicom::ReadOptions& b) {
  return a.frame == b.frame && a.apply_modality_lut == b.apply_modality_lut &&
         a.invert_monochrome1 == b.invert_monochrome1 && a.convert_color == b.convert_color;
}

}  // namespace

ModelPackage verify_package(const std::string& package_dir, const PackageOptions& options) {
  ModelPackage package = ModelPackage::open(package_dir, options);
  Model sections;
  load_sections(package, sections);
  return package;
}

double routing_bucket(const std::string& key) {
  const std::uint64_t v = std::stoull(detail::sha256_hex("medinfer-ab-v1:" + key).substr(0, 16), nullptr, 16);
  return static_cast<double>(v >> 11) * 0x1.0p-53;  // 53 bits: exactly representable, < 1
}

struct Pipeline::Impl {
  PipelineOptions options;
  std::mutex deploy_mutex;             // serialises swap / A/B changes
  std::shared_ptr<const Serving> serving;  // read with std::atomic_load, replaced with std::atomic_store

  std::shared_ptr<const Serving> now() const { return std::atomic_load(&serving); }
  void publish(std::shared_ptr<const Serving> next) { std::atomic_store(&serving, std::move(next)); }
  // The arm for `key`: the candidate when the key's bucket is below the fraction.
  static std::pair<std::shared_ptr<const Model>, const char*> route(const Serving& s, const std::string& key) {
    if (!s.candidate) return {s.primary, ""};
    if (routing_bucket(key) < s.fraction) return {s.candidate, "candidate"};
    return {s.primary, "primary"};
  }
  std::shared_ptr<const Model> open_audited(const std::string& package_dir) const;

  Result predict_image(const Model& model, const char* arm, const Image& image, const preprocess::Context& context,
                       const risk::InputFacts& facts, const std::string& input_sha256, const InputRefs& refs,
                       Clock::time_point start) const;
  InputRefs refs_of(const dicom::ImageHeader& header) const;
  audit::Record base_record(const Model& model, audit::EventType type) const;
  audit::Record inference_record(const Model& model, const char* arm, const InputRefs& refs) const;
  void audit_error(const Model& model, const char* arm, const Error& e, const std::string& path, const InputRefs& refs,
                   Clock::time_point start) const;
  void audit_change(const Model& model, const std::string& detail) const;
};

// Opens a package with the pipeline's options; audits model_opened, or model_refused and rethrows.
std::shared_ptr<const Model> Pipeline::Impl::open_audited(const std::string& package_dir) const {
  try {
    std::shared_ptr<const Model> model = open_model(package_dir, options);
    audit::Record opened = base_record(*model, audit::EventType::kModelOpened);
    opened.outcome = "ok";
    opened.detail = "package " + model->package->directory() + " on " + model->engine->description();
    emit(options, opened);
    return model;
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

Pipeline Pipeline::open(const std::string& package_dir, PipelineOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  auto serving = std::make_shared<Serving>();
  serving->primary = impl->open_audited(package_dir);
  impl->publish(std::move(serving));
  return Pipeline(std::move(impl));
}

audit::Record Pipeline::Impl::base_record(const Model& model, audit::EventType type) const {
  audit::Record r;
  r.event = type;
  r.model = model.package->identity();
  r.preprocessing_sha256 = model.spec_sha256;
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

audit::Record Pipeline::Impl::inference_record(const Model& model, const char* arm, const InputRefs& refs) const {
  audit::Record r = base_record(model, audit::EventType::kInference);
  r.study_ref = refs.study;
  r.series_ref = refs.series;
  r.instance_ref = refs.instance;
  r.arm = arm;
  return r;
}

void Pipeline::Impl::audit_error(const Model& model, const char* arm, const Error& e, const std::string& path,
                                 const InputRefs& refs, Clock::time_point start) const {
  audit::Record r = inference_record(model, arm, refs);
  r.outcome = "error";
  r.error_code = to_string(e.code());
  r.error_message = redact(e.what(), path);
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  emit(options, r);
}

void Pipeline::Impl::audit_change(const Model& model, const std::string& detail) const {
  audit::Record r = base_record(model, audit::EventType::kConfigurationChange);
  r.outcome = "ok";
  r.detail = detail;
  emit(options, r);
}

Result Pipeline::Impl::predict_image(const Model& model, const char* arm, const Image& image,
                                     const preprocess::Context& context, const risk::InputFacts& facts,
                                     const std::string& input_sha256, const InputRefs& refs,
                                     Clock::time_point start) const {
  const ModelPackage& package = *model.package;
  const Tensor input = preprocess::apply(model.spec, image, context);
  const Tensor logits = model.batcher ? model.batcher->run(input) : model.engine->run(input);
  for (float z : logits.data) {
    if (!std::isfinite(z)) {
      throw Error(ErrorCode::kInternal, package.identity().name + ": the model produced a non-finite logit");
    }
  }
  // Input rules come first: an input outside the gate is not scored as if it were in.
  const bool constant = is_constant(image);
  const std::vector<double> p = probabilities(model, logits.data);
  std::vector<Finding> findings;
  for (std::size_t k = 0; k < p.size(); ++k) {
    const risk::Policy& policy = model.policies[k];
    risk::Score score = risk::assess(policy, p[k]);
    std::vector<std::pair<std::string, std::string>> rules;
    const risk::GateResult gate = risk::check_quality(policy.quality_gate, facts);
    if (!gate.rule.empty()) rules.emplace_back(gate.rule, gate.reason);
    if (constant) rules.emplace_back("input_constant", "the input image is constant (no contrast)");
    if (!rules.empty()) {
      const risk::Score model_verdict = score;
      score.indeterminate = false;
      score.reason.clear();
      for (const auto& [rule, reason] : rules) score = risk::mark_indeterminate(std::move(score), rule, reason);
      if (model_verdict.indeterminate) {
        score = risk::mark_indeterminate(std::move(score), model_verdict.rule, model_verdict.reason);
      }
    }
    findings.push_back(finding_of(package.labels()[k], logits.data[k], score));
  }
  const std::size_t top_index = primary_finding(findings);
  const Finding& top = findings[top_index];

  Result r;
  r.probability = top.probability;
  r.raw_score = top.raw_score;
  r.confidence = top.confidence;
  r.tier = top.tier;
  r.escalate = top.escalate;
  r.indeterminate = top.indeterminate;
  r.reason = top.reason;
  r.rule = top.rule;
  if (model.policies[top_index].operating_point) r.operating_point = model.policies[top_index].operating_point->name;
  r.operating_point_positive = top.operating_point_positive;
  r.prediction_set = top.prediction_set;
  r.label = top.label;
  r.model = package.identity();
  r.arm = arm;
  r.input_sha256 = input_sha256;
  r.preprocessing_sha256 = model.spec_sha256;

  audit::Record rec = inference_record(model, arm, refs);
  rec.input_sha256 = r.input_sha256;
  rec.outcome = r.indeterminate ? "indeterminate" : "ok";
  rec.raw_score = r.raw_score;
  rec.probability = r.probability;
  rec.tier = r.tier;
  rec.escalate = r.escalate;
  rec.reason = r.reason;
  rec.rule = r.rule;
  if (package.task() != Task::kBinary) {
    rec.label = r.label;
    for (const Finding& f : findings) rec.findings.push_back({f.label, f.raw_score, f.probability, f.tier, f.escalate});
  }
  r.findings = std::move(findings);
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  rec.latency_ms = r.latency_ms;
  emit(options, rec);
  return r;
}

Result Pipeline::predict(const std::string& dicom_path) const {
  const auto start = Clock::now();
  const std::shared_ptr<const Serving> serving = impl_->now();
  std::shared_ptr<const Model> model = serving->primary;
  const char* arm = "";
  std::optional<dicom::Instance> instance;
  try {
    const dicom::ReadOptions primary_read = model->spec.read_options(impl_->options.read);
    instance = dicom::read_instance(dicom_path, primary_read);
    if (serving->candidate) {
      const dicom::ImageHeader& h = instance->header;
      std::tie(model, arm) = Impl::route(*serving, h.study_instance_uid.empty() ? h.sop_instance_uid : h.study_instance_uid);
      const dicom::ReadOptions read = model->spec.read_options(impl_->options.read);
      if (!same_read(read, primary_read)) instance = dicom::read_instance(dicom_path, read);
    }
  } catch (const Error& e) {
    impl_->audit_error(*model, arm, e, dicom_path, {}, start);
    throw;
  }
  const InputRefs refs = impl_->refs_of(instance->header);
  const dicom::ImageHeader& h = instance->header;
  const risk::InputFacts facts{h.modality, h.body_part_examined, h.photometric_interpretation,
                               instance->image.spacing()[0], instance->image.spacing()[1], h.rows, h.columns};
  const preprocess::Context context = preprocess::context_from(h);
  try {
    return impl_->predict_image(*model, arm, instance->image, context, facts, fingerprint(instance->image), refs, start);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) impl_->audit_error(*model, arm, e, dicom_path, refs, start);
    throw;
  }
}

Result Pipeline::predict(const Image& image, const std::string& routing_key) const {
  const auto start = Clock::now();
  const std::shared_ptr<const Serving> serving = impl_->now();
  std::shared_ptr<const Model> model = serving->primary;
  const char* arm = "";
  try {
    const std::string input_sha256 = fingerprint(image);
    std::tie(model, arm) = Impl::route(*serving, routing_key.empty() ? input_sha256 : routing_key);
    const risk::InputFacts facts{{}, {}, {}, image.spacing()[0], image.spacing()[1],
                                 static_cast<std::uint32_t>(image.height()), static_cast<std::uint32_t>(image.width())};
    return impl_->predict_image(*model, arm, image, {}, facts, input_sha256, {}, start);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) impl_->audit_error(*model, arm, e, {}, {}, start);
    throw;
  }
}

namespace {
std::string describe(const ModelIdentity& id) { return id.name + " " + id.version + " (" + id.sha256.substr(0, 12) + ")"; }
}  // namespace

ModelIdentity Pipeline::swap_model(const std::string& package_dir) {
  std::lock_guard<std::mutex> lock(impl_->deploy_mutex);
  std::shared_ptr<const Model> next = impl_->open_audited(package_dir);  // the old model serves meanwhile
  const std::shared_ptr<const Serving> current = impl_->now();
  auto serving = std::make_shared<Serving>(*current);
  serving->primary = next;
  impl_->audit_change(*next, "model swapped: " + describe(current->primary->package->identity()) + " -> " +
                                 describe(next->package->identity()));
  impl_->publish(std::move(serving));
  detail::log(LogLevel::kInfo, "model swapped: {} -> {}", describe(current->primary->package->identity()),
              describe(next->package->identity()));
  return next->package->identity();
}

ModelIdentity Pipeline::start_ab_test(const std::string& candidate_dir, double candidate_fraction) {
  if (!(candidate_fraction >= 0.0 && candidate_fraction <= 1.0)) {
    throw Error(ErrorCode::kInvalidArgument, fmt::format("start_ab_test: candidate_fraction {} is not in [0, 1]", candidate_fraction));
  }
  std::lock_guard<std::mutex> lock(impl_->deploy_mutex);
  std::shared_ptr<const Model> candidate = impl_->open_audited(candidate_dir);
  auto serving = std::make_shared<Serving>(*impl_->now());
  serving->candidate = candidate;
  serving->fraction = candidate_fraction;
  impl_->audit_change(*serving->primary, fmt::format("A/B test started: primary {}, candidate {}, candidate fraction {}",
                                                     describe(serving->primary->package->identity()),
                                                     describe(candidate->package->identity()), candidate_fraction));
  impl_->publish(std::move(serving));
  return candidate->package->identity();
}

void Pipeline::stop_ab_test() {
  std::lock_guard<std::mutex> lock(impl_->deploy_mutex);
  const std::shared_ptr<const Serving> current = impl_->now();
  if (!current->candidate) return;
  auto serving = std::make_shared<Serving>();
  serving->primary = current->primary;
  impl_->audit_change(*current->primary, "A/B test stopped: candidate " + describe(current->candidate->package->identity()) +
                                             " withdrawn");
  impl_->publish(std::move(serving));
}

ModelIdentity Pipeline::promote_candidate() {
  std::lock_guard<std::mutex> lock(impl_->deploy_mutex);
  const std::shared_ptr<const Serving> current = impl_->now();
  if (!current->candidate) throw Error(ErrorCode::kInvalidArgument, "promote_candidate: no A/B test is running");
  auto serving = std::make_shared<Serving>();
  serving->primary = current->candidate;
  impl_->audit_change(*current->candidate, "A/B test ended: candidate " + describe(current->candidate->package->identity()) +
                                               " promoted over " + describe(current->primary->package->identity()));
  impl_->publish(std::move(serving));
  return current->candidate->package->identity();
}

Deployment Pipeline::deployment() const {
  const std::shared_ptr<const Serving> s = impl_->now();
  Deployment d;
  d.primary = s->primary->package->identity();
  if (s->candidate) {
    d.candidate = s->candidate->package->identity();
    d.candidate_fraction = s->fraction;
  }
  return d;
}

void Pipeline::record_event(audit::EventType type, const std::string& detail) const {
  if (type != audit::EventType::kConfigurationChange && type != audit::EventType::kOverride) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("record_event: hosts record configuration_change or override, not ") + audit::to_string(type));
  }
  audit::Record r = impl_->base_record(*impl_->now()->primary, type);
  r.outcome = "ok";
  r.detail = detail;
  emit(impl_->options, r);
}

ModelIdentity Pipeline::model() const { return impl_->now()->primary->package->identity(); }
std::shared_ptr<const ModelPackage> Pipeline::package() const { return impl_->now()->primary->package; }

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;
Pipeline::~Pipeline() = default;

}  // namespace medinfer
