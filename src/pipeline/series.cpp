// Series and studies: a 2D package over every slice of a series (through predict_many) with the
// manifest's aggregation, a 3D package once on the series volume, and a study's series selected by the
// manifest's selection rules. The rules are package::detail's (series_section.hpp); this file wires.
#include <medinfer/calibration.hpp>
#include <medinfer/error.hpp>
#include <medinfer/pipeline.hpp>
#include <medinfer/preprocess.hpp>
#include <medinfer/risk.hpp>

#include "core/sha256.hpp"
#include "pipeline/pipeline_internal.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

namespace medinfer {
namespace {

using package::detail::SeriesSection;

std::string volume_fingerprint(const Volume& v) {
  detail::Sha256 h;
  const std::string head = fmt::format("medinfer-volume-v1 {} {}x{}x{}\n", to_string(v.pixel_type()), v.width(),
                                       v.height(), v.depth());
  h.update(head.data(), head.size());
  h.update(v.data(), v.size_bytes());
  return h.hex_digest();
}

void describe_series(SeriesResult& r, const dicom::SeriesVolume& g) {
  r.series_instance_uid = g.header.series_instance_uid;
  r.study_instance_uid = g.header.study_instance_uid;
  r.modality = g.header.modality;
  r.warnings = g.warnings;
}

}  // namespace

SeriesResult Pipeline::Impl::predict_series(const std::vector<std::string>& files, const ManyOptions& options) const {
  const auto start = Clock::now();
  check_many_options(options);
  const std::shared_ptr<const Serving> serving = now();  // the whole series on one deployment
  std::shared_ptr<const Model> model = serving->primary;
  const bool volumetric = model->package->input_shape().size() == 5;
  dicom::SeriesOptions so;
  so.threads = options.workers;
  so.read = model->sections.spec.read_options(this->options.read);
  so.decode = volumetric;
  Arm arm = Arm::kNone;
  SeriesResult r;
  if (volumetric) {
    dicom::SeriesVolume v;
    InputRefs refs;
    try {
      v = dicom::read_series(files, so);
      if (serving->candidate) {
        const dicom::ImageHeader& h = v.header;
        std::tie(model, arm) = route(*serving, h.study_instance_uid.empty() ? h.sop_instance_uid : h.study_instance_uid);
        dicom::SeriesOptions candidate = so;
        candidate.read = model->sections.spec.read_options(this->options.read);
        if (model != serving->primary) v = dicom::read_series(files, candidate);
      }
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kAuditFailed) audit_error(*model, arm, e, files.empty() ? std::string() : files[0], {}, start);
      throw;
    }
    refs = refs_of(v.header, v.files.empty() ? std::string() : v.files.front());
    refs.instance.clear();
    try {
      const Tensor input = preprocess::apply_volume(model->sections.spec, v.volume, preprocess::context_from(v.header),
                                                    options.workers);
      const Tensor logits = model->engine->run(input);
      risk::InputFacts facts = facts_of(v.header, {v.volume.spacing()[0], v.volume.spacing()[1]});
      facts.constant = is_constant(input);
      compose(r, *model, arm, findings_of(*model, logits.data, facts), volume_fingerprint(v.volume), start);
      describe_series(r, v);
      r.aggregation = "volume";
      r.slices = v.volume.depth();
      audit_series(*model, r, refs);
      return r;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kAuditFailed) audit_error(*model, arm, e, v.files.front(), refs, start);
      throw;
    }
  }

  // 2D: the geometry orders the slices; each slice is one predict_many input.
  if (model->package->task() == Task::kMultiClass) {
    throw Error(ErrorCode::kInvalidArgument, model->package->directory() +
                                                 "/manifest.json: a multi-class 2D package has no series aggregation "
                                                 "(series aggregation applies to binary and multi-label packages)");
  }
  dicom::SeriesVolume g;
  try {
    g = dicom::read_series(files, so);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) audit_error(*model, arm, e, files.empty() ? std::string() : files[0], {}, start);
    throw;
  }
  std::vector<Input> inputs;
  for (std::size_t k = 0; k < g.files.size(); ++k) inputs.push_back(Input::file(g.files[k], static_cast<int>(g.frames[k])));
  ManyOptions slice_options = options;
  slice_options.ordered = true;
  slice_options.on_outcome = nullptr;
  slice_options.progress = options.progress;
  const std::vector<Outcome> outcomes = predict_many(inputs, slice_options, serving);

  describe_series(r, g);
  const std::size_t labels = model->package->labels().size();
  // Per label, every predicted slice's calibrated probability and raw logit (which of them is
  // aggregated is the series section's choice, read once the model the slices ran on is known).
  std::vector<std::vector<double>> probabilities(labels), logits(labels);
  std::vector<std::size_t> slice_of;  // ok outcome -> slice index
  std::string sha_chain = "medinfer-series-v1\n";
  bool all_constant = true;
  const Result* first = nullptr;
  for (const Outcome& o : outcomes) {
    if (!o.ok()) {
      ++r.failed_slices;
      const Error& e = *o.error;
      r.warnings.push_back({dicom::SeriesWarningKind::kUnreadable,
                            fmt::format("slice {} ({}): {}: {}", o.index, g.files[o.index], to_string(e.code()), e.what())});
      continue;
    }
    if (!first) first = &*o.result;
    if (o.result->model.sha256 != first->model.sha256) {  // cannot happen on one pinned deployment
      throw Error(ErrorCode::kInternal, "predict_series: slices were predicted by different models");
    }
    slice_of.push_back(o.index);
    sha_chain += o.result->input_sha256 + "\n";
    all_constant = all_constant && o.result->rule == Rule::kInputConstant;
    for (std::size_t k = 0; k < labels; ++k) {
      probabilities[k].push_back(o.result->findings[k].probability);
      logits[k].push_back(o.result->findings[k].raw_score);
    }
  }
  if (!first) {
    const Error& e = *outcomes.front().error;
    Error failure(ErrorCode::kInvalidDicom, fmt::format("predict_series: none of the {} slices could be predicted; "
                                                        "slice 0 ({}): {}: {}",
                                                        outcomes.size(), g.files.front(), to_string(e.code()), e.what()));
    audit_error(*model, arm, failure, g.files.front(), {}, start);
    throw failure;
  }
  // The model and arm the slices ran on (an A/B test routes a study's slices to one arm).
  std::shared_ptr<const Model> used = first->arm == Arm::kCandidate ? serving->candidate : serving->primary;
  arm = first->arm;
  InputRefs refs = refs_of(g.header, g.files.front());
  refs.instance.clear();
  try {
    risk::InputFacts facts = facts_of(g.header, {g.header.pixel_spacing[1], g.header.pixel_spacing[0]});
    facts.constant = all_constant;
    const SeriesSection& s = used->sections.series;
    std::vector<Finding> findings;
    for (std::size_t k = 0; k < labels; ++k) {
      // The aggregated logit is the raw score either way; the probability is the series calibrator's
      // of it (aggregate) or the aggregation of the calibrated slice probabilities (per_slice).
      const double z = package::detail::aggregate(s, logits[k], true);
      const double p = s.calibrate_aggregate ? s.calibrators[k].apply(z)
                                             : package::detail::aggregate(s, probabilities[k], false);
      Finding f = risk::assess(used->sections.policies[k], p, facts);
      f.raw_score = z;
      f.label = used->package->labels()[k];
      findings.push_back(std::move(f));
    }
    compose(r, *used, arm, std::move(findings), detail::sha256_hex(sha_chain), start);
    r.aggregation = package::detail::to_string(s.aggregation);
    r.slices = slice_of.size();
    // Evidence: per label, the slices with the highest probability (ties: the lower slice index).
    for (std::size_t k = 0; k < labels; ++k) {
      std::vector<std::size_t> order(slice_of.size());
      std::iota(order.begin(), order.end(), 0);
      auto prob = [&](std::size_t j) { return probabilities[k][j]; };
      std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return prob(a) > prob(b); });
      for (std::size_t j = 0; j < std::min(s.evidence_slices, order.size()); ++j) {
        const std::size_t slice = slice_of[order[j]];
        r.evidence.push_back({used->package->labels()[k], slice, g.sop_instance_uids[slice], prob(order[j])});
      }
    }
    audit_series(*used, r, refs);
    return r;
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) audit_error(*used, arm, e, g.files.front(), refs, start);
    throw;
  }
}

SeriesResult Pipeline::predict_series(const std::vector<std::string>& files, const ManyOptions& options) const {
  return impl_->predict_series(files, options);
}

namespace {

// The one series of a scanned directory, or kInvalidArgument naming how many it holds.
const dicom::SeriesEntry& only_series(const dicom::DirectoryIndex& index, const std::string& where) {
  std::size_t count = 0;
  for (const auto& study : index.studies) count += study.series.size();
  if (count == 0) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: no DICOM image among its {} files", where, index.files_seen));
  }
  if (count > 1) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: holds {} series; predict_series takes one (predict_study selects among them)", where, count));
  }
  return index.studies.front().series.front();
}

std::vector<std::string> paths_of(const dicom::SeriesEntry& s) {
  std::vector<std::string> files;
  for (const auto& e : s.instances) files.push_back(e.path);
  return files;
}

package::detail::SeriesFacts facts_of(const dicom::SeriesEntry& s) {
  package::detail::SeriesFacts f;
  f.modality = s.modality;
  f.body_part = s.body_part_examined;
  for (const auto& e : s.instances) {
    if (std::find(e.image_type.begin(), e.image_type.end(), "LOCALIZER") != e.image_type.end()) continue;
    if (f.slices == 0) {
      f.image_type = e.image_type;
      f.slice_thickness_mm = e.slice_thickness;
      f.orientation = e.has_orientation ? package::detail::orientation_name(e.orientation) : "oblique";
    }
    f.slices += e.frames;
  }
  return f;
}

}  // namespace

SeriesResult Pipeline::predict_series(const std::string& directory, const ManyOptions& options) const {
  const auto read = impl_->now()->primary->sections.spec.read_options(impl_->options.read);
  const dicom::DirectoryIndex index = dicom::scan_directory(directory, read, options.workers);
  return predict_series(paths_of(only_series(index, directory)), options);
}

namespace {

StudyResult study_of(const Pipeline& pipeline, const std::shared_ptr<const Model>& model,
                     const dicom::DirectoryIndex& index, const std::string& where, const ManyOptions& options,
                     Clock::time_point start) {
  if (index.studies.empty()) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: no DICOM image among its {} files", where, index.files_seen));
  }
  if (index.studies.size() > 1) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: files of {} studies; predict_study takes one study", where, index.studies.size()));
  }
  const dicom::StudyEntry& study = index.studies.front();
  StudyResult out;
  out.study_instance_uid = study.study_instance_uid;
  out.skipped_files = index.skipped;
  const bool volumetric = model->package->input_shape().size() == 5;
  for (const dicom::SeriesEntry& s : study.series) {
    SkippedSeries id{s.series_instance_uid, s.modality, s.series_description, {}};
    const package::detail::SeriesFacts facts = facts_of(s);
    std::string why = package::detail::selection_mismatch(model->sections.selection, facts);
    if (why.empty() && volumetric && facts.slices < 2) why = "a 3D package needs at least 2 slices";
    if (!why.empty()) {
      id.reason = why;
      out.skipped.push_back(std::move(id));
      continue;
    }
    if (options.cancel.cancelled()) {
      id.reason = "not started: the run was cancelled";
      out.skipped.push_back(std::move(id));
      continue;
    }
    try {
      out.series.push_back(pipeline.predict_series(paths_of(s), options));
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kAuditFailed) throw;
      out.failed.emplace_back(std::move(id), e);
    }
  }
  out.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  return out;
}

}  // namespace

StudyResult Pipeline::predict_study(const std::vector<std::string>& files, const ManyOptions& options) const {
  const auto start = Clock::now();
  check_many_options(options);
  const std::shared_ptr<const Model> model = impl_->now()->primary;
  const auto read = model->sections.spec.read_options(impl_->options.read);
  return study_of(*this, model, dicom::scan_files(files, read, options.workers),
                  fmt::format("predict_study ({} paths)", files.size()), options, start);
}

StudyResult Pipeline::predict_study(const std::string& directory, const ManyOptions& options) const {
  const auto start = Clock::now();
  check_many_options(options);
  const std::shared_ptr<const Model> model = impl_->now()->primary;
  const auto read = model->sections.spec.read_options(impl_->options.read);
  return study_of(*this, model, dicom::scan_directory(directory, read, options.workers), directory, options, start);
}

}  // namespace medinfer
