// The facade: composes the modules in flow order (read -> preprocess -> engine -> calibration -> risk ->
// audit). Every rule it applies is the owning module's; this file only wires them together.
#include <medinfer/calibration.hpp>
#include <medinfer/deidentify.hpp>
#include <medinfer/error.hpp>
#include <medinfer/pipeline.hpp>
#include <medinfer/preprocess.hpp>
#include <medinfer/risk.hpp>

#include "audit/audit_internal.hpp"
#include "core/sha256.hpp"
#include "pipeline/pipeline_internal.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <tuple>

namespace medinfer {
namespace {

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

// True when the model's input is constant, or nearly (every value within 1e-6 of the others), after
// the package's preprocessing: a blank or saturated frame, or one that windowing flattened (a
// negative slope, a window outside the data). A quality fact for risk, whatever the raw pixels were.
bool is_constant(const Tensor& input) {
  if (input.data.empty()) return true;
  const auto [lo, hi] = std::minmax_element(input.data.begin(), input.data.end());
  return !(*hi - *lo > 1e-6f);
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

risk::InputFacts facts_of(const dicom::Instance& instance) {
  const dicom::ImageHeader& h = instance.header;
  risk::InputFacts facts{h.modality, h.body_part_examined, h.photometric_interpretation, instance.image.spacing()[0],
                         instance.image.spacing()[1], h.rows, h.columns};
  facts.spacing_known = h.has_pixel_spacing;
  return facts;
}

}  // namespace

Pipeline Pipeline::open(const std::string& package_dir, PipelineOptions options) {
  if (!options.pseudonym_key.empty()) {
    try {
      (void)dicom::pseudonymize("", options.pseudonym_key);  // the one key rule (dicom's)
    } catch (const Error& e) {
      throw Error(e.code(), std::string("PipelineOptions::pseudonym_key: ") + e.what());
    }
  }
  options.actor = audit::detail::checked_actor(std::move(options.actor));  // never empty, bounded
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  auto serving = std::make_shared<Serving>();
  serving->primary = impl->open_audited(package_dir);
  impl->publish(std::move(serving));
  return Pipeline(std::move(impl));
}

Result Pipeline::Impl::predict_image(const Model& model, Arm arm, const Image& image,
                                     const preprocess::Context& context, risk::InputFacts facts,
                                     const std::string& input_sha256, const InputRefs& refs,
                                     Clock::time_point start) const {
  const ModelPackage& package = *model.package;
  const Tensor input = preprocess::apply(model.sections.spec, image, context);
  const Tensor logits = model.batcher ? model.batcher->run(input) : model.engine->run(input);  // finite
  facts.constant = is_constant(input);
  const std::vector<double> p = calibration::probabilities(model.sections.calibrators, package.task(), logits.data);
  std::vector<Finding> findings;
  for (std::size_t k = 0; k < p.size(); ++k) {
    Finding f = risk::assess(model.sections.policies[k], p[k], facts);
    f.label = package.labels()[k];
    f.raw_score = logits.data[k];
    findings.push_back(std::move(f));
  }
  const std::size_t top_index = primary_finding(findings);

  Result r;
  static_cast<Finding&>(r) = findings[top_index];
  const risk::Policy& top_policy = model.sections.policies[top_index];
  if (top_policy.operating_point) r.operating_point = top_policy.operating_point->name;
  r.model = package.identity();
  r.arm = arm;
  r.input_sha256 = input_sha256;
  r.preprocessing_sha256 = model.sections.spec_sha256;
  r.findings = std::move(findings);
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  audit_result(model, r, refs);
  return r;
}

Result Pipeline::predict(const std::string& dicom_path) const {
  const auto start = Clock::now();
  const std::shared_ptr<const Serving> serving = impl_->now();
  std::shared_ptr<const Model> model = serving->primary;
  Arm arm = Arm::kNone;
  std::optional<dicom::Instance> instance;
  try {
    const dicom::ReadOptions primary_read = model->sections.spec.read_options(impl_->options.read);
    instance = dicom::read_instance(dicom_path, primary_read);
    if (serving->candidate) {
      const dicom::ImageHeader& h = instance->header;
      std::tie(model, arm) = Impl::route(*serving, h.study_instance_uid.empty() ? h.sop_instance_uid : h.study_instance_uid);
      const dicom::ReadOptions read = model->sections.spec.read_options(impl_->options.read);
      if (!same_read(read, primary_read)) instance = dicom::read_instance(dicom_path, read);
    }
  } catch (const Error& e) {
    impl_->audit_error(*model, arm, e, dicom_path, {}, start);
    throw;
  }
  const InputRefs refs = impl_->refs_of(instance->header, dicom_path);
  const preprocess::Context context = preprocess::context_from(instance->header);
  try {
    return impl_->predict_image(*model, arm, instance->image, context, facts_of(*instance), fingerprint(instance->image),
                                refs, start);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) impl_->audit_error(*model, arm, e, dicom_path, refs, start);
    throw;
  }
}

Result Pipeline::predict(const Image& image, const std::string& routing_key) const {
  const auto start = Clock::now();
  const std::shared_ptr<const Serving> serving = impl_->now();
  std::shared_ptr<const Model> model = serving->primary;
  Arm arm = Arm::kNone;
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

Tensor Pipeline::prepare(const std::string& dicom_path) const {
  const std::shared_ptr<const Model> model = impl_->now()->primary;
  const preprocess::Spec& spec = model->sections.spec;
  const dicom::Instance instance = dicom::read_instance(dicom_path, spec.read_options(impl_->options.read));
  return preprocess::apply(spec, instance.image, preprocess::context_from(instance.header));
}

ModelIdentity Pipeline::model() const { return impl_->now()->primary->package->identity(); }
std::shared_ptr<const ModelPackage> Pipeline::package() const { return impl_->now()->primary->package; }

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;
Pipeline::~Pipeline() = default;

}  // namespace medinfer
