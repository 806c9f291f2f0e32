// Preprocessing with OpenCV. Works in float32 from the first step: window and normalise are affine
// maps, and resizing in float keeps the area average exact (no 8-bit quantisation).
#include <medinfer/error.hpp>
#include <medinfer/preprocess.hpp>

#include "core/block_cache.hpp"
#include "core/module_versions.hpp"
#include "core/parallel.hpp"
#include "preprocess/plane.hpp"
#include "preprocess/steps.hpp"
#include "preprocess/window.hpp"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>

namespace medinfer {
namespace detail {
std::string opencv_version() { return CV_VERSION; }
}  // namespace detail

namespace preprocess {
namespace {

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

// OpenCV's Mat storage from the block cache (core/block_cache.hpp) instead of fastMalloc:
// the full-size float copy of every input is the previous input's memory, already mapped. Set on the
// Mats preprocessing creates, never as OpenCV's process-wide default.
class BlockAllocator final : public cv::MatAllocator {
 public:
  cv::UMatData* allocate(int dims, const int* sizes, int type, void* data0, size_t* step, cv::AccessFlag,
                         cv::UMatUsageFlags) const override {
    size_t total = CV_ELEM_SIZE(type);
    for (int i = dims - 1; i >= 0; i--) {
      if (step) {
        if (data0 && step[i] != cv::Mat::AUTO_STEP) {
          CV_Assert(total <= step[i]);
          total = step[i];
        } else {
          step[i] = total;
        }
      }
      total *= static_cast<size_t>(sizes[i]);
    }
    std::size_t capacity = 0;
    auto* data = data0 ? static_cast<uchar*>(data0) : static_cast<uchar*>(medinfer::detail::acquire_block(total, &capacity));
    auto* u = new cv::UMatData(this);
    u->data = u->origdata = data;
    u->size = total;
    u->userdata = reinterpret_cast<void*>(static_cast<std::uintptr_t>(capacity));
    if (data0) u->flags |= cv::UMatData::USER_ALLOCATED;
    return u;
  }
  bool allocate(cv::UMatData* u, cv::AccessFlag, cv::UMatUsageFlags) const override { return u != nullptr; }
  void deallocate(cv::UMatData* u) const override {
    if (!u) return;
    if (!(u->flags & cv::UMatData::USER_ALLOCATED)) {
      medinfer::detail::release_block(u->origdata, static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(u->userdata)));
    }
    delete u;
  }
};

cv::MatAllocator* block_allocator() {
  static BlockAllocator allocator;
  return &allocator;
}

cv::Mat to_float(const Image& image) {
  const int rows = static_cast<int>(image.height()), cols = static_cast<int>(image.width());
  const int channels = static_cast<int>(image.channels());
  cv::Mat out;
  out.allocator = block_allocator();
  if (image.pixel_type() == PixelType::kUInt32) {
    out.create(rows, cols, CV_32FC(channels));
    const auto* src = static_cast<const std::uint32_t*>(image.data());
    float* dst = out.ptr<float>();
    for (std::size_t i = 0, n = image.width() * image.height() * image.channels(); i < n; ++i) {
      dst[i] = static_cast<float>(src[i]);
    }
    return out;
  }
  // A header over the caller's pixels (no copy); convertTo writes the one float copy.
  const cv::Mat view(rows, cols, CV_MAKETYPE(cv_depth(image.pixel_type()), channels), const_cast<void*>(image.data()));
  view.convertTo(out, CV_32F);
  return out;
}

}  // namespace

int detail::cv_interpolation(Interpolation i) {
  switch (i) {
    case Interpolation::kArea: return cv::INTER_AREA;
    case Interpolation::kLinear: return cv::INTER_LINEAR;
    case Interpolation::kNearest: return cv::INTER_NEAREST_EXACT;
    case Interpolation::kCubic: return cv::INTER_CUBIC;
  }
  return cv::INTER_AREA;
}

void Spec::validate() const {
  for (std::size_t i = 0; i < steps.size(); ++i) detail::validate_step(*this, i);
}

Context context_from(const dicom::ImageHeader& h) {
  Context c;
  c.has_file_window = h.has_window;
  c.file_window_center = h.window_center;
  c.file_window_width = h.window_width;
  c.file_window_function = h.voi_lut_function;
  if (h.has_voi_lut_sequence) {
    c.file_voi_lut = h.voi_lut;
    c.file_voi_lut_first_mapped = h.voi_lut_first_mapped;
    c.file_voi_lut_bits = h.voi_lut_bits;
  }
  return c;
}

dicom::ReadOptions Spec::read_options(dicom::ReadOptions base) const {
  for (const Step& step : steps) detail::read_options(step, base);
  return base;
}

bool Spec::is_volumetric() const {
  return std::any_of(steps.begin(), steps.end(), [](const Step& step) { return detail::is_volumetric(step); });
}

namespace detail {

// The window's bounds and curve for this input (the file's VOI when asked and present).
WindowStep::Function resolve_window(const WindowStep& w, const Context& context, double& center, double& width) {
  center = w.center;
  width = w.width;
  WindowStep::Function fn = w.function;
  if (w.from_file && context.has_file_window) {
    center = context.file_window_center;
    width = context.file_window_width;
    if (context.file_window_function == "LINEAR_EXACT") {
      fn = WindowStep::Function::kLinearExact;
    } else if (context.file_window_function == "SIGMOID") {
      fn = WindowStep::Function::kSigmoid;
    } else {
      fn = width >= 1.0 ? WindowStep::Function::kDicomLinear : WindowStep::Function::kLinearExact;
    }
  }
  return fn;
}

bool apply_file_voi_lut(const WindowStep& w, const Context& context, float* x, std::size_t n) {
  if (!w.from_file || context.has_file_window || context.file_voi_lut.empty()) return false;
  const auto& lut = context.file_voi_lut;
  const double scale = 1.0 / (std::ldexp(1.0, std::min<int>(context.file_voi_lut_bits, 16)) - 1.0);
  const long first = context.file_voi_lut_first_mapped, last = static_cast<long>(lut.size()) - 1;
  for (std::size_t i = 0; i < n; ++i) {
    const long k = std::min(last, std::max(0L, std::lround(static_cast<double>(x[i])) - first));
    x[i] = static_cast<float>(std::min(1.0, lut[static_cast<std::size_t>(k)] * scale));
  }
  return true;
}

void apply_window_curve(float* x, std::size_t n, WindowStep::Function fn, double center, double width) {
  switch (fn) {
    case WindowStep::Function::kLinear:
    case WindowStep::Function::kDicomLinear:
    case WindowStep::Function::kLinearExact: {
      double scale = 1.0 / width, offset = -(center - width / 2.0) / width;  // linear
      if (fn == WindowStep::Function::kDicomLinear) {
        scale = 1.0 / (width - 1.0 > 0.0 ? width - 1.0 : 1.0);
        offset = -(center - 0.5) * scale + 0.5;
      } else if (fn == WindowStep::Function::kLinearExact) {
        offset = -center / width + 0.5;
      }
      const float s = static_cast<float>(scale), o = static_cast<float>(offset);
      for (std::size_t i = 0; i < n; ++i) x[i] = std::min(1.0f, std::max(0.0f, x[i] * s + o));
      break;
    }
    case WindowStep::Function::kSigmoid:
      for (std::size_t i = 0; i < n; ++i) {
        x[i] = static_cast<float>(1.0 / (1.0 + std::exp(-4.0 * (static_cast<double>(x[i]) - center) / width)));
      }
      break;
  }
}

double percentile(const float* x, std::size_t n, double q) {
  std::vector<float> v(x, x + n);
  const double pos = q / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, v.size() - 1);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(lo), v.end());
  const double a = v[lo];
  const double b = hi == lo ? a : *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(lo) + 1, v.end());
  return a + (pos - static_cast<double>(lo)) * (b - a);
}

}  // namespace detail

namespace detail {

double percentile(const cv::Mat& x, double q) {
  cv::Mat c = x.isContinuous() ? x : x.clone();
  return detail::percentile(c.ptr<float>(), c.total() * static_cast<std::size_t>(c.channels()), q);
}

cv::Mat crop_or_pad(const cv::Mat& x, int w, int h, double pad) {
  cv::Mat out(h, w, x.type(), cv::Scalar::all(pad));
  const int sx = std::max(0, (x.cols - w) / 2), sy = std::max(0, (x.rows - h) / 2);
  const int dx = std::max(0, (w - x.cols) / 2), dy = std::max(0, (h - x.rows) / 2);
  const int cw = std::min(w, x.cols), ch = std::min(h, x.rows);
  x(cv::Rect(sx, sy, cw, ch)).copyTo(out(cv::Rect(dx, dy, cw, ch)));
  return out;
}

cv::Mat resized(const cv::Mat& x, int w, int h, int interpolation) {
  if (x.cols == w && x.rows == h) return x;
  cv::Mat out;
  cv::resize(x, out, cv::Size(w, h), 0, 0, interpolation);
  return out;
}

}  // namespace detail

namespace {

// Runs the steps; returns the final plane and the number of output channels.
std::pair<cv::Mat, int> run_steps(const Spec& spec, const Image& image, const Context& context) {
  if (image.empty()) throw Error(ErrorCode::kInvalidArgument, "preprocess: the image is empty");
  if (image.channels() != 1 && image.channels() != 3) {
    throw Error(ErrorCode::kInvalidArgument, "preprocess: images have 1 (grayscale) or 3 (RGB) channels, not " +
                                                 std::to_string(image.channels()));
  }
  if (spec.is_volumetric()) {
    throw Error(ErrorCode::kInvalidArgument,
                "preprocess: the spec has volume steps (depth, a z spacing, reorient or a depth flip): use apply_volume");
  }
  spec.validate();  // a Spec built by hand gets the checks a parsed one had
  try {
    detail::PlaneRun run{to_float(image), image.spacing()[0], image.spacing()[1], 1, context};
    for (const Step& step : spec.steps) detail::apply_step(step, run);
    cv::Mat& x = run.x;
    int channels = run.channels;
    if (x.channels() != 1) {
      if (channels != 1) {
        throw Error(ErrorCode::kInvalidArgument, "preprocess: 'channels' replicates a single channel, but the image has " +
                                                     std::to_string(x.channels()) + " (add a color step to gray first)");
      }
      channels = x.channels();
    }
    return {x, channels};
  } catch (const cv::Exception& e) {
    throw Error(ErrorCode::kInternal, std::string("preprocess: OpenCV failed: ") + e.what());
  }
}

// Writes `channels` consecutive planes at dst: the single plane replicated, or a colour image's
// channels split (NCHW).
void write_planes(const cv::Mat& x, int channels, float* dst) {
  const std::size_t plane = static_cast<std::size_t>(x.rows) * x.cols;
  if (x.channels() > 1) {
    std::vector<cv::Mat> planes;
    for (int c = 0; c < x.channels(); ++c) planes.emplace_back(x.rows, x.cols, CV_32F, dst + plane * static_cast<std::size_t>(c));
    cv::split(x, planes);
    return;
  }
  for (int c = 0; c < channels; ++c) {
    cv::Mat out(x.rows, x.cols, CV_32F, dst + plane * static_cast<std::size_t>(c));
    x.copyTo(out);
  }
}

}  // namespace

Tensor apply(const Spec& spec, const Image& image, const Context& context) {
  const auto [x, channels] = run_steps(spec, image, context);
  Tensor t;
  t.shape = {1, channels, x.rows, x.cols};
  t.data.resize(static_cast<std::size_t>(x.rows) * x.cols * static_cast<std::size_t>(channels));
  write_planes(x, channels, t.data.data());
  return t;
}

Tensor apply_batch(const Spec& spec, const std::vector<Image>& images, const std::vector<Context>& contexts,
                   unsigned threads) {
  if (images.empty()) throw Error(ErrorCode::kInvalidArgument, "apply_batch: no images");
  if (!contexts.empty() && contexts.size() != images.size()) {
    throw Error(ErrorCode::kInvalidArgument, "apply_batch: " + std::to_string(contexts.size()) + " contexts for " +
                                                 std::to_string(images.size()) + " images");
  }
  auto context_of = [&](std::size_t i) { return contexts.empty() ? Context{} : contexts[i]; };
  // The first image fixes the batch's shape and its one buffer; the rest run in parallel, each
  // writing its own slot.
  Tensor t;
  const auto [x0, channels0] = run_steps(spec, images[0], context_of(0));
  t.shape = {static_cast<std::int64_t>(images.size()), channels0, x0.rows, x0.cols};
  const std::size_t per_image = static_cast<std::size_t>(x0.rows) * x0.cols * static_cast<std::size_t>(channels0);
  t.data.resize(per_image * images.size());  // the batch buffer, allocated once
  write_planes(x0, channels0, t.data.data());
  // A shape mismatch is recorded, not thrown from the worker, so the error always names the lowest
  // index that does not fit (whichever thread finds one first).
  std::vector<std::array<int, 3>> mismatch(images.size(), {0, 0, 0});
  std::vector<char> bad(images.size(), 0);
  medinfer::detail::parallel_for(images.size() - 1, threads, [&](std::size_t k) {
    const std::size_t i = k + 1;
    const auto [x, channels] = run_steps(spec, images[i], context_of(i));
    if (t.shape[1] != channels || t.shape[2] != x.rows || t.shape[3] != x.cols) {
      mismatch[i] = {channels, x.rows, x.cols};
      bad[i] = 1;
      return;
    }
    write_planes(x, channels, t.data.data() + per_image * i);
  });
  for (std::size_t i = 1; i < images.size(); ++i) {
    if (!bad[i]) continue;
    throw Error(ErrorCode::kInvalidArgument,
                "apply_batch: image " + std::to_string(i) + " gives [" + std::to_string(mismatch[i][0]) + ", " +
                    std::to_string(mismatch[i][1]) + ", " + std::to_string(mismatch[i][2]) + "], image 0 gave [" +
                    std::to_string(t.shape[1]) + ", " + std::to_string(t.shape[2]) + ", " +
                    std::to_string(t.shape[3]) + "]: add a resize or crop_or_pad step");
  }
  return t;
}

}  // namespace preprocess
}  // namespace medinfer
