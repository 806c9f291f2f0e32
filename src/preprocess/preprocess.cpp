// Preprocessing with OpenCV. Works in float32 from the first step: window and normalise are affine
// maps, and resizing in float keeps the area average exact (no 8-bit quantisation).
#include <medinfer/error.hpp>
#include <medinfer/preprocess.hpp>

#include "core/module_versions.hpp"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <string>

namespace medinfer {
namespace detail {
std::string opencv_version() { return CV_VERSION; }
}  // namespace detail

namespace preprocess {
namespace {

constexpr int kMaxSide = 16384;

[[noreturn]] void invalid(std::size_t index, const char* field, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument,
              "preprocessing[" + std::to_string(index) + "]." + field + ": " + what);
}

int cv_depth(PixelType t) {
  switch (t) {
    case PixelType::kUInt8: return CV_8U;
    case PixelType::kInt8: return CV_8S;
    case PixelType::kUInt16: return CV_16U;
    case PixelType::kInt16: return CV_16S;
    case PixelType::kInt32: return CV_32S;
    case PixelType::kFloat32: return CV_32F;
    case PixelType::kFloat64: return CV_64F;
    case PixelType::kUInt32: return -1;  // no OpenCV type: converted by hand below
  }
  return -1;
}

cv::Mat to_float(const Image& image) {
  const int rows = static_cast<int>(image.height()), cols = static_cast<int>(image.width());
  cv::Mat out;
  if (image.pixel_type() == PixelType::kUInt32) {
    out.create(rows, cols, CV_32F);
    const auto* src = static_cast<const std::uint32_t*>(image.data());
    float* dst = out.ptr<float>();
    for (std::size_t i = 0, n = image.width() * image.height(); i < n; ++i) dst[i] = static_cast<float>(src[i]);
    return out;
  }
  // A header over the caller's pixels (no copy); convertTo writes the one float copy.
  const cv::Mat view(rows, cols, CV_MAKETYPE(cv_depth(image.pixel_type()), 1), const_cast<void*>(image.data()));
  view.convertTo(out, CV_32F);
  return out;
}

int cv_interpolation(Interpolation i) {
  switch (i) {
    case Interpolation::kArea: return cv::INTER_AREA;
    case Interpolation::kLinear: return cv::INTER_LINEAR;
    case Interpolation::kNearest: return cv::INTER_NEAREST_EXACT;
    case Interpolation::kCubic: return cv::INTER_CUBIC;
  }
  return cv::INTER_AREA;
}

}  // namespace

void Spec::validate() const {
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (const auto* w = std::get_if<WindowStep>(&steps[i])) {
      if (!std::isfinite(w->center)) invalid(i, "center", "must be finite");
      if (!std::isfinite(w->width) || w->width <= 0.0) invalid(i, "width", "must be finite and > 0");
    } else if (const auto* r = std::get_if<ResizeStep>(&steps[i])) {
      if (r->width < 1 || r->width > kMaxSide) invalid(i, "width", "must be in 1.." + std::to_string(kMaxSide));
      if (r->height < 1 || r->height > kMaxSide) invalid(i, "height", "must be in 1.." + std::to_string(kMaxSide));
    } else if (const auto* n = std::get_if<NormalizeStep>(&steps[i])) {
      if (!std::isfinite(n->mean)) invalid(i, "mean", "must be finite");
      if (!std::isfinite(n->std) || n->std <= 0.0) invalid(i, "std", "must be finite and > 0");
    }
  }
}

Tensor apply(const Spec& spec, const Image& image) {
  if (image.empty()) throw Error(ErrorCode::kInvalidArgument, "preprocess: the image is empty");
  if (image.channels() != 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "preprocess: " + std::to_string(image.channels()) + "-channel images are not supported yet");
  }
  try {
    cv::Mat x = to_float(image);
    for (const Step& step : spec.steps) {
      if (const auto* w = std::get_if<WindowStep>(&step)) {
        const double lo = w->center - w->width / 2.0;
        x.convertTo(x, CV_32F, 1.0 / w->width, -lo / w->width);
        cv::min(x, 1.0, x);
        cv::max(x, 0.0, x);
      } else if (const auto* r = std::get_if<ResizeStep>(&step)) {
        if (x.cols != r->width || x.rows != r->height) {
          cv::Mat resized;
          cv::resize(x, resized, cv::Size(r->width, r->height), 0, 0, cv_interpolation(r->interpolation));
          x = resized;
        }
      } else if (const auto* n = std::get_if<NormalizeStep>(&step)) {
        x.convertTo(x, CV_32F, 1.0 / n->std, -n->mean / n->std);
      }
    }
    Tensor t;
    t.shape = {1, 1, x.rows, x.cols};
    t.data.resize(static_cast<std::size_t>(x.rows) * x.cols);
    cv::Mat dst(x.rows, x.cols, CV_32F, t.data.data());
    x.copyTo(dst);
    return t;
  } catch (const cv::Exception& e) {
    throw Error(ErrorCode::kInternal, std::string("preprocess: OpenCV failed: ") + e.what());
  }
}

}  // namespace preprocess
}  // namespace medinfer
