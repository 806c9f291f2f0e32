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
}  // namespace

bool is_constant(const Tensor& input) {
  if (input.data.empty()) return true;
  // A plain min/max loop (vectorised by the compiler; std::minmax_element's branches are not). A NaN
  // never wins a comparison, so it cannot make an input look varied.
  float lo = input.data[0], hi = input.data[0];
  for (const float v : input.data) {
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  return !(hi - lo > 1e-6f);
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

void compose(Result& r, const Model& model, Arm arm, std::vector<Finding> findings, std::string input_sha256,
             Clock::time_point start) {
  const std::size_t top_index = primary_finding(findings);
  static_cast<Finding&>(r) = findings[top_index];
  const risk::Policy& top_policy = model.sections.policies[top_index];
  if (top_policy.operating_point) r.operating_point = top_policy.operating_point->name;
  r.model = model.package->identity();
  r.arm = arm;
  r.input_sha256 = std::move(input_sha256);
  r.preprocessing_sha256 = model.sections.spec_sha256;
  r.findings = std::move(findings);
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

namespace {

bool same_read(const dicom::ReadOptions& a, const dicom::ReadOptions& b) {
  return a.frame == b.frame && a.apply_modality_lut == b.apply_modality_lut &&
         a.invert_monochrome1 == b.invert_monochrome1 && a.convert_color == b.convert_color;
}

}  // namespace

risk::InputFacts facts_of(const dicom::ImageHeader& h, const std::array<double, 2>& spacing) {
  risk::InputFacts facts{h.modality, h.body_part_examined, h.photometric_interpretation, spacing[0], spacing[1],
                         h.rows, h.columns};
  facts.spacing_known = h.has_pixel_spacing;
  return facts;
}

std::vector<Finding> findings_of(const Model& model, const std::vector<float>& logits, const risk::InputFacts& facts) {
  const ModelPackage& package = *model.package;
  const std::vector<double> prob = calibration::probabilities(model.sections.calibrators, package.task(), logits);
  std::vector<Finding> findings;
  for (std::size_t k = 0; k < prob.size(); ++k) {
    Finding f = risk::assess(model.sections.policies[k], prob[k], facts);
    f.label = package.labels()[k];
    f.raw_score = logits[k];
    findings.push_back(std::move(f));
  }
  return findings;
}

void require_2d(const Model& model) {
  if (model.package->input_shape().size() != 4) {
    throw Error(ErrorCode::kInvalidArgument, "a 3D package (input.shape [1, C, D, H, W]) predicts series: use predict_series");
  }
}

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

Input Input::file(std::string path, int frame) {
  Input in;
  in.kind = Kind::kPath;
  in.path = std::move(path);
  in.frame = frame;
  return in;
}

Input Input::dicom(std::shared_ptr<const std::string> part10_bytes, std::string name) {
  Input in;
  in.kind = Kind::kDicomBytes;
  in.bytes = std::move(part10_bytes);
  in.path = std::move(name);
  return in;
}

Input Input::pixels(Image image, std::string routing_key) {
  Input in;
  in.kind = Kind::kImage;
  in.image = std::move(image);
  in.routing_key = std::move(routing_key);
  return in;
}

Prepared Pipeline::Impl::prepare(const Serving& serving, const Input& in, Clock::time_point start) const {
  Prepared p;
  p.start = start;
  p.model = serving.primary;
  p.path = in.path;
  const bool printable = std::all_of(in.request_id.begin(), in.request_id.end(),
                                     [](char c) { return c > 0x20 && c < 0x7f; });
  if (in.request_id.size() > 128 || !printable) {
    throw Error(ErrorCode::kInvalidArgument, "Input::request_id: at most 128 printable ASCII characters, no spaces");
  }
  p.refs.request_id = in.request_id;
  if (in.kind == Input::Kind::kImage) {
    try {
      p.input_sha256 = fingerprint(in.image);
      std::tie(p.model, p.arm) = route(serving, in.routing_key.empty() ? p.input_sha256 : in.routing_key);
      require_2d(*p.model);
      p.facts = risk::InputFacts{{}, {}, {}, in.image.spacing()[0], in.image.spacing()[1],
                                 static_cast<std::uint32_t>(in.image.height()), static_cast<std::uint32_t>(in.image.width())};
      p.input = preprocess::apply(p.model->sections.spec, in.image, {});
      p.facts.constant = is_constant(p.input);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kAuditFailed) audit_error(*p.model, p.arm, e, {}, p.refs, start);
      throw;
    }
    return p;
  }
  // A DICOM object: read with the primary's read options, routed by its study, read again only when the
  // candidate's preprocessing reads differently.
  std::optional<dicom::Instance> instance;
  auto read = [&](dicom::ReadOptions options) {
    if (in.frame >= 0) options.frame = static_cast<std::uint32_t>(in.frame);
    if (in.kind == Input::Kind::kPath) return dicom::read_instance(in.path, options);
    if (!in.bytes) throw Error(ErrorCode::kInvalidArgument, "Input::dicom: no bytes");
    return dicom::read_instance_from_memory(in.bytes->data(), in.bytes->size(), in.path, options);
  };
  try {
    require_2d(*p.model);
    const dicom::ReadOptions primary_read = p.model->sections.spec.read_options(options.read);
    instance = read(primary_read);
    if (serving.candidate) {
      const dicom::ImageHeader& h = instance->header;
      std::tie(p.model, p.arm) = route(serving, h.study_instance_uid.empty() ? h.sop_instance_uid : h.study_instance_uid);
      const dicom::ReadOptions candidate_read = p.model->sections.spec.read_options(options.read);
      if (!same_read(candidate_read, primary_read)) instance = read(candidate_read);
    }
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) audit_error(*p.model, p.arm, e, in.path, p.refs, start);
    throw;
  }
  p.refs = refs_of(instance->header, in.path);
  p.refs.request_id = in.request_id;
  p.study_instance_uid = instance->header.study_instance_uid;
  p.series_instance_uid = instance->header.series_instance_uid;
  p.sop_instance_uid = instance->header.sop_instance_uid;
  try {
    p.facts = facts_of(instance->header, instance->image.spacing());
    p.input_sha256 = fingerprint(instance->image);
    p.input = preprocess::apply(p.model->sections.spec, instance->image, preprocess::context_from(instance->header));
    p.facts.constant = is_constant(p.input);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) audit_error(*p.model, p.arm, e, in.path, p.refs, start);
    throw;
  }
  return p;
}

Result Pipeline::Impl::finish(const Prepared& p, const float* logits, int batch_size) const {
  const Model& model = *p.model;
  try {
    const std::size_t count = static_cast<std::size_t>(model.package->output_count());
    Result r;
    compose(r, model, p.arm, findings_of(model, std::vector<float>(logits, logits + count), p.facts), p.input_sha256,
            p.start);
    r.study_instance_uid = p.study_instance_uid;
    r.series_instance_uid = p.series_instance_uid;
    r.sop_instance_uid = p.sop_instance_uid;
    r.batch_size = batch_size;
    audit_result(model, r, p.refs);
    return r;
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) audit_error(model, p.arm, e, p.path, p.refs, p.start);
    throw;
  }
}

Result Pipeline::Impl::run_one(const Prepared& p, bool through_batcher) const {
  Tensor logits;
  int batch_size = 1;
  try {
    logits = through_batcher && p.model->batcher ? p.model->batcher->run(p.input, &batch_size)
                                                 : p.model->engine->run(p.input);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) audit_error(*p.model, p.arm, e, p.path, p.refs, p.start);
    throw;
  }
  return finish(p, logits.data.data(), batch_size);
}

Result Pipeline::predict(const std::string& dicom_path) const {
  const auto start = Clock::now();
  return impl_->run_one(impl_->prepare(*impl_->now(), Input::file(dicom_path), start));
}

Result Pipeline::predict(const Input& input) const {
  const auto start = Clock::now();
  return impl_->run_one(impl_->prepare(*impl_->now(), input, start));
}

Result Pipeline::predict(const Image& image, const std::string& routing_key) const {
  const auto start = Clock::now();
  return impl_->run_one(impl_->prepare(*impl_->now(), Input::pixels(image, routing_key), start));
}

std::vector<Outcome> Pipeline::predict_many(const std::vector<Input>& inputs, const ManyOptions& options) const {
  return impl_->predict_many(inputs, options, nullptr);
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
