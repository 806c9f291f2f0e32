// What the pipeline writes to the audit trail: opening a package (model_opened / model_refused), every
// prediction (its result or its error), deployment changes and host events.
#include <medinfer/deidentify.hpp>
#include <medinfer/error.hpp>
#include <medinfer/pipeline.hpp>

#include "audit/audit_internal.hpp"
#include "pipeline/pipeline_internal.hpp"

#include <filesystem>

namespace medinfer {
namespace {

// `message` with every occurrence of `path` replaced by `placeholder`.
std::string redact(std::string message, const std::string& path, const std::string& placeholder = "<input>") {
  if (path.empty()) return message;
  for (auto pos = message.find(path); pos != std::string::npos; pos = message.find(path, pos + placeholder.size())) {
    message.replace(pos, path.size(), placeholder);
  }
  return message;
}

std::shared_ptr<const Model> open_model(const std::string& package_dir, const PipelineOptions& options) {
  auto model = std::make_shared<Model>();
  model->package = std::make_shared<const ModelPackage>(ModelPackage::open(package_dir, options.package));
  model->sections = package::detail::load_sections(*model->package);
  model->engine.emplace(Engine::open(*model->package, options.engine));
  if (options.batching.max_batch_size > 1) {
    model->batcher = std::make_unique<detail::Batcher>(*model->engine, model->package->input_shape(), options.batching);
  }
  return model;
}

}  // namespace

// Fills the fields every record carries and hands it to the sink. kAuditFailed if the sink fails.
void Pipeline::Impl::emit(audit::Record& record) const {
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

// Opens a package with the pipeline's options; audits model_opened, or model_refused and rethrows.
std::shared_ptr<const Model> Pipeline::Impl::open_audited(const std::string& package_dir) const {
  try {
    std::shared_ptr<const Model> model = open_model(package_dir, options);
    audit::Record opened = base_record(*model, audit::EventType::kModelOpened);
    opened.outcome = audit::Outcome::kOk;
    // Name, version and hash identify a package; its path is never recorded (paths carry names).
    opened.detail = "package " + model->package->identity().name + " " + model->package->identity().version + " on " +
                    model->engine->description();
    emit(opened);
    return model;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kAuditFailed) throw;
    audit::Record refused;
    refused.event = audit::EventType::kModelRefused;
    refused.outcome = audit::Outcome::kError;
    refused.error_code = e.code();
    std::error_code ec;
    const std::string canonical = std::filesystem::weakly_canonical(package_dir, ec).string();
    refused.error_message = redact(redact(e.what(), canonical, "<package>"), package_dir, "<package>");
    refused.detail = "a model package was refused";
    emit(refused);
    throw;
  }
}

audit::Record Pipeline::Impl::base_record(const Model& model, audit::EventType type) const {
  audit::Record r;
  r.event = type;
  r.model = model.package->identity();
  r.preprocessing_sha256 = model.sections.spec_sha256;
  return r;
}

InputRefs Pipeline::Impl::refs_of(const dicom::ImageHeader& h, const std::string& path) const {
  InputRefs refs;
  if (options.include_identifiers) {
    refs.study = h.study_instance_uid;
    refs.series = h.series_instance_uid;
    refs.instance = h.sop_instance_uid;
  } else if (!options.pseudonym_key.empty()) {
    auto pseudonym = [&](const std::string& uid) {
      return uid.empty() ? std::string() : dicom::pseudonymize(uid, options.pseudonym_key);
    };
    refs.study = pseudonym(h.study_instance_uid);
    refs.series = pseudonym(h.series_instance_uid);
    refs.instance = pseudonym(h.sop_instance_uid);
  }
  for (const dicom::HeaderWarning& w : h.warnings) refs.warnings.push_back({to_string(w.kind), w.tag, redact(w.message, path)});
  return refs;
}

audit::Record Pipeline::Impl::inference_record(const Model& model, Arm arm, const InputRefs& refs) const {
  audit::Record r = base_record(model, audit::EventType::kInference);
  r.study_ref = refs.study;
  r.series_ref = refs.series;
  r.instance_ref = refs.instance;
  r.request_id = refs.request_id;
  r.input_warnings = refs.warnings;
  r.arm = arm;
  return r;
}

void Pipeline::Impl::audit_result(const Model& model, const Result& result, const InputRefs& refs) const {
  audit::Record rec = inference_record(model, result.arm, refs);
  rec.input_sha256 = result.input_sha256;
  rec.outcome = result.indeterminate ? audit::Outcome::kIndeterminate : audit::Outcome::kOk;
  rec.finding = result;  // the primary finding (a Result is one)
  if (model.package->task() == Task::kBinary) {
    rec.finding.label.clear();  // binary records name no label (one per package)
  } else {
    rec.findings = result.findings;
  }
  rec.latency_ms = result.latency_ms;
  emit(rec);
}

void Pipeline::Impl::audit_series(const Model& model, const SeriesResult& result, const InputRefs& refs) const {
  audit::Record rec = inference_record(model, result.arm, refs);
  rec.input_sha256 = result.input_sha256;
  rec.outcome = result.indeterminate ? audit::Outcome::kIndeterminate : audit::Outcome::kOk;
  rec.finding = result;
  if (model.package->task() == Task::kBinary) {
    rec.finding.label.clear();
  } else {
    rec.findings = result.findings;
  }
  rec.latency_ms = result.latency_ms;
  rec.detail = result.aggregation == "volume"
                   ? "series result: one 3D prediction on " + std::to_string(result.slices) + " slices"
                   : "series result: " + result.aggregation + " over " + std::to_string(result.slices) + " slices (" +
                         std::to_string(result.failed_slices) + " failed)";
  emit(rec);
}

void Pipeline::Impl::audit_error(const Model& model, Arm arm, const Error& e, const std::string& path,
                                 const InputRefs& refs, Clock::time_point start) const {
  audit::Record r = inference_record(model, arm, refs);
  r.outcome = audit::Outcome::kError;
  r.error_code = e.code();
  r.error_message = redact(e.what(), path);
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  emit(r);
}

void Pipeline::Impl::audit_change(const Model& model, const std::string& detail) const {
  audit::Record r = base_record(model, audit::EventType::kConfigurationChange);
  r.outcome = audit::Outcome::kOk;
  r.detail = detail;
  emit(r);
}

void Pipeline::record_event(audit::EventType type, const std::string& detail, audit::Outcome outcome) const {
  if (type != audit::EventType::kConfigurationChange && type != audit::EventType::kOverride &&
      type != audit::EventType::kDicomTransfer) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("record_event: hosts record configuration_change, override or dicom_transfer, not ") +
                    audit::to_string(type));
  }
  audit::detail::check_detail(detail, "record_event: detail");
  audit::Record r = impl_->base_record(*impl_->now()->primary, type);
  r.outcome = outcome;
  r.detail = detail;
  impl_->emit(r);
}

}  // namespace medinfer
