// The facade: composes the modules in flow order. The only place that knows all of them.
#include <medinfer/calibration.hpp>
#include <medinfer/error.hpp>
#include <medinfer/pipeline.hpp>
#include <medinfer/preprocess.hpp>
#include <medinfer/risk.hpp>

#include "calibration/calibration_json.hpp"
#include "core/json_util.hpp"
#include "core/log_internal.hpp"
#include "core/sha256.hpp"
#include "preprocess/spec_json.hpp"
#include "risk/risk_json.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <optional>

namespace medinfer {
namespace {

using Clock = std::chrono::steady_clock;

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

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

std::string redact(std::string message, const std::string& path) {
  if (path.empty()) return message;
  for (auto pos = message.find(path); pos != std::string::npos; pos = message.find(path, pos + 7)) {
    message.replace(pos, path.size(), "<input>");
  }
  return message;
}

}  // namespace

struct Pipeline::Impl {
  ModelPackage package;
  preprocess::Spec spec;
  calibration::TemperatureScaling calibrator{1.0};
  risk::Policy policy;
  std::optional<Engine> engine;
  PipelineOptions options;

  Result predict_image(const Image& image, const std::string& input_sha256, Clock::time_point start) const;
  void audit(const audit::Record& record) const;
  void audit_error(const Error& e, const std::string& path, Clock::time_point start) const;
};

Pipeline Pipeline::open(const std::string& package_dir, PipelineOptions options) {
  auto impl = std::unique_ptr<Impl>(new Impl{ModelPackage::open(package_dir), {}, calibration::TemperatureScaling(1.0),
                                             {}, std::nullopt, std::move(options)});
  const std::string where = impl->package.directory() + "/manifest.json";
  const detail::Json manifest = detail::parse_json(impl->package.manifest_text(), where);
  impl->spec = preprocess::detail::spec_from_json(detail::require_member(manifest, "preprocessing", where),
                                                  detail::field_path(where, "preprocessing"));
  impl->calibrator = calibration::detail::calibration_from_json(detail::require_member(manifest, "calibration", where),
                                                                detail::field_path(where, "calibration"));
  impl->policy = risk::detail::policy_from_json(detail::require_member(manifest, "risk", where),
                                                detail::field_path(where, "risk"));
  impl->engine.emplace(Engine::open(impl->package, impl->options.engine));
  return Pipeline(std::move(impl));
}

void Pipeline::Impl::audit(const audit::Record& record) const {
  if (!options.audit_sink) return;
  try {
    options.audit_sink->write(record);
  } catch (const Error& e) {
    throw Error(ErrorCode::kAuditFailed, std::string("audit sink failed; the result was not released: ") + e.what());
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kAuditFailed, std::string("audit sink failed; the result was not released: ") + e.what());
  } catch (...) {
    throw Error(ErrorCode::kAuditFailed, "audit sink failed with an unknown exception; the result was not released");
  }
}

void Pipeline::Impl::audit_error(const Error& e, const std::string& path, Clock::time_point start) const {
  audit::Record r;
  r.timestamp = utc_timestamp();
  r.model = package.identity();
  r.outcome = "error";
  r.error_code = to_string(e.code());
  r.error_message = redact(e.what(), path);
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  audit(r);
}

Result Pipeline::Impl::predict_image(const Image& image, const std::string& input_sha256,
                                     Clock::time_point start) const {
  const Tensor input = preprocess::apply(spec, image);
  const Tensor logits = engine->run(input);
  const double logit = logits.data.at(0);
  if (!std::isfinite(logit)) {
    throw Error(ErrorCode::kInternal, package.identity().name + ": the model produced a non-finite logit");
  }
  risk::Score score = risk::assess(policy, calibrator.apply(logit));
  if (is_constant(image)) score = risk::mark_indeterminate(std::move(score), "the input image is constant (no contrast)");

  Result r;
  r.probability = score.probability;
  r.raw_score = logit;
  r.confidence = score.confidence;
  r.tier = score.tier;
  r.escalate = score.escalate;
  r.indeterminate = score.indeterminate;
  r.reason = score.reason;
  r.model = package.identity();
  r.input_sha256 = input_sha256;
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();

  audit::Record rec;
  rec.timestamp = utc_timestamp();
  rec.model = r.model;
  rec.input_sha256 = r.input_sha256;
  rec.outcome = r.indeterminate ? "indeterminate" : "ok";
  rec.raw_score = r.raw_score;
  rec.probability = r.probability;
  rec.tier = r.tier;
  rec.escalate = r.escalate;
  rec.reason = r.reason;
  rec.latency_ms = r.latency_ms;
  audit(rec);
  return r;
}

Result Pipeline::predict(const std::string& dicom_path) const {
  const auto start = Clock::now();
  std::optional<Image> image;
  try {
    image = dicom::read_image(dicom_path, impl_->options.read);
  } catch (const Error& e) {
    impl_->audit_error(e, dicom_path, start);
    throw;
  }
  try {
    return impl_->predict_image(*image, fingerprint(*image), start);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) impl_->audit_error(e, dicom_path, start);
    throw;
  }
}

Result Pipeline::predict(const Image& image) const {
  const auto start = Clock::now();
  try {
    return impl_->predict_image(image, fingerprint(image), start);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kAuditFailed) impl_->audit_error(e, {}, start);
    throw;
  }
}

const ModelIdentity& Pipeline::model() const noexcept { return impl_->package.identity(); }

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;
Pipeline::~Pipeline() = default;

}  // namespace medinfer
