// Preprocessing with OpenCV. Works in float32 from the first step: window and normalise are affine
// maps, and resizing in float keeps the area average exact (no 8-bit quantisation).
#include <medinfer/error.hpp>
#include <medinfer/preprocess.hpp>

#include "core/block_cache.hpp"
#include "core/module_versions.hpp"
#include "core/parallel.hpp"
#include "preprocess/window.hpp"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
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
  auto side = [](std::size_t i, const char* field, int v) {
    if (v < 1 || v > kMaxSide) invalid(i, field, "must be in 1.." + std::to_string(kMaxSide));
  };
  auto finite = [](std::size_t i, const char* field, double v) {
    if (!std::isfinite(v)) invalid(i, field, "must be finite");
  };
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (const auto* w = std::get_if<WindowStep>(&steps[i])) {
      if (w->use_percentiles) {
        if (!(w->lower_percentile >= 0.0 && w->lower_percentile < w->upper_percentile && w->upper_percentile <= 100.0)) {
          invalid(i, "percentiles", "must be [lower, upper] with 0 <= lower < upper <= 100");
        }
      } else {
        finite(i, "center", w->center);
        if (!std::isfinite(w->width) || w->width <= 0.0) invalid(i, "width", "must be finite and > 0");
        if (w->function == WindowStep::Function::kDicomLinear && w->width < 1.0) {
          invalid(i, "width", "must be >= 1 for dicom_linear");
        }
      }
    } else if (const auto* r = std::get_if<ResizeStep>(&steps[i])) {
      side(i, "width", r->width);
      side(i, "height", r->height);
      if (r->depth != 0) side(i, "depth", r->depth);
      finite(i, "pad_value", r->pad_value);
      if (r->depth != 0 && r->keep_aspect) invalid(i, "mode", "keep_aspect_pad is 2D only");
    } else if (const auto* n = std::get_if<NormalizeStep>(&steps[i])) {
      for (double v : n->channel_stds) {
        if (!std::isfinite(v) || v <= 0.0) invalid(i, "std", "every value must be finite and > 0");
      }
      for (double v : n->channel_means) finite(i, "mean", v);
      if (n->mode == NormalizeStep::Mode::kFixed) {
        finite(i, "mean", n->mean);
        if (!std::isfinite(n->std) || n->std <= 0.0) invalid(i, "std", "must be finite and > 0");
      }
    } else if (const auto* c = std::get_if<ClipStep>(&steps[i])) {
      finite(i, "min", c->min);
      finite(i, "max", c->max);
      if (!(c->min < c->max)) invalid(i, "max", "must be greater than min");
    } else if (const auto* rs = std::get_if<ResampleStep>(&steps[i])) {
      for (double v : {rs->spacing_x, rs->spacing_y}) {
        if (!std::isfinite(v) || v <= 0.0 || v > 1000.0) invalid(i, "spacing_mm", "must be in (0, 1000]");
      }
      if (rs->spacing_z != 0.0 && (!std::isfinite(rs->spacing_z) || rs->spacing_z <= 0.0 || rs->spacing_z > 1000.0)) {
        invalid(i, "spacing_mm", "must be in (0, 1000]");
      }
    } else if (const auto* cp = std::get_if<CropOrPadStep>(&steps[i])) {
      side(i, "width", cp->width);
      side(i, "height", cp->height);
      if (cp->depth != 0) side(i, "depth", cp->depth);
      finite(i, "pad_value", cp->pad_value);
    } else if (const auto* ch = std::get_if<ChannelsStep>(&steps[i])) {
      if (ch->replicate < 1 || ch->replicate > 16) invalid(i, "replicate", "must be in 1..16");
    } else if (const auto* rs2 = std::get_if<RescaleStep>(&steps[i])) {
      for (double v : {rs2->in_min, rs2->in_max, rs2->out_min, rs2->out_max}) finite(i, "in_range", v);
      if (!(rs2->in_min < rs2->in_max)) invalid(i, "in_range", "must be [min, max] with min < max");
      if (rs2->out_min == rs2->out_max) invalid(i, "out_range", "must be two different values");
    } else if (const auto* fr = std::get_if<FrameStep>(&steps[i])) {
      if (fr->index < 0 || fr->index > 65535) invalid(i, "index", "must be in 0..65535");
      if (i > 0 && !std::holds_alternative<FrameStep>(steps[i - 1]) && !std::holds_alternative<ModalityLutStep>(steps[i - 1])) {
        invalid(i, "step", "frame is an input step: it must come before every other step");
      }
    } else if (std::holds_alternative<ModalityLutStep>(steps[i])) {
      if (i > 0 && !std::holds_alternative<FrameStep>(steps[i - 1]) && !std::holds_alternative<ModalityLutStep>(steps[i - 1])) {
        invalid(i, "step", "modality_lut is an input step: it must come before every other step");
      }
    } else if (const auto* ro = std::get_if<ReorientStep>(&steps[i])) {
      const std::string& a = ro->axes;
      auto count = [&](const char* letters) {
        return std::count_if(a.begin(), a.end(), [&](char c) { return std::strchr(letters, c) != nullptr; });
      };
      if (a.size() != 3 || count("LR") != 1 || count("PA") != 1 || count("SI") != 1) {
        invalid(i, "axes", "'" + a + "' must name one of L/R, one of P/A and one of S/I, e.g. LPS or RAS");
      }
    }
  }
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
  for (const Step& step : steps) {
    if (const auto* f = std::get_if<FrameStep>(&step)) base.frame = static_cast<std::uint32_t>(f->index);
    if (const auto* m = std::get_if<ModalityLutStep>(&step)) base.apply_modality_lut = m->apply;
  }
  return base;
}

bool Spec::is_volumetric() const {
  for (const Step& step : steps) {
    if (const auto* r = std::get_if<ResizeStep>(&step); r && r->depth != 0) return true;
    if (const auto* r = std::get_if<ResampleStep>(&step); r && r->spacing_z != 0.0) return true;
    if (const auto* c = std::get_if<CropOrPadStep>(&step); c && c->depth != 0) return true;
    if (const auto* f = std::get_if<FlipStep>(&step); f && f->depth) return true;
    if (std::holds_alternative<ReorientStep>(step)) return true;
  }
  return false;
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

namespace {

double percentile(const cv::Mat& x, double q) {
  cv::Mat c = x.isContinuous() ? x : x.clone();
  return detail::percentile(c.ptr<float>(), c.total() * static_cast<std::size_t>(c.channels()), q);
}

// Centred crop/pad of x to w x h (offsets floor((old - new) / 2)).
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

}  // namespace

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
  try {
    cv::Mat x = to_float(image);
    double spacing_x = image.spacing()[0], spacing_y = image.spacing()[1];
    int channels = 1;
    for (const Step& step : spec.steps) {
      if (const auto* w = std::get_if<WindowStep>(&step)) {
        if (w->use_percentiles) {
          const double lo = percentile(x, w->lower_percentile);
          const double width = percentile(x, w->upper_percentile) - lo;
          if (width > 0.0) {
            x.convertTo(x, CV_32F, 1.0 / width, -lo / width);
          } else {
            x.setTo(0.0);  // percentiles of a constant image coincide: nothing to window
          }
          cv::min(x, 1.0, x);
          cv::max(x, 0.0, x);
        } else {
          double center = 0.0, width = 1.0;
          const auto fn = detail::resolve_window(*w, context, center, width);
          if (!x.isContinuous()) x = x.clone();
          if (detail::apply_file_voi_lut(*w, context, x.ptr<float>(), x.total() * static_cast<std::size_t>(x.channels()))) {
            continue;
          }
          detail::apply_window_curve(x.ptr<float>(), x.total() * static_cast<std::size_t>(x.channels()), fn, center,
                                     width);
        }
      } else if (const auto* c = std::get_if<ClipStep>(&step)) {
        cv::min(x, c->max, x);
        cv::max(x, c->min, x);
      } else if (const auto* r = std::get_if<ResizeStep>(&step)) {
        if (!r->keep_aspect) {
          x = resized(x, r->width, r->height, cv_interpolation(r->interpolation));
        } else {
          const double scale = std::min(static_cast<double>(r->width) / x.cols, static_cast<double>(r->height) / x.rows);
          const int w = std::max(1, std::min(r->width, static_cast<int>(std::lround(x.cols * scale))));
          const int h = std::max(1, std::min(r->height, static_cast<int>(std::lround(x.rows * scale))));
          x = crop_or_pad(resized(x, w, h, cv_interpolation(r->interpolation)), r->width, r->height, r->pad_value);
        }
      } else if (const auto* rs = std::get_if<ResampleStep>(&step)) {
        const int w = std::max(1, static_cast<int>(std::lround(x.cols * spacing_x / rs->spacing_x)));
        const int h = std::max(1, static_cast<int>(std::lround(x.rows * spacing_y / rs->spacing_y)));
        if (w > kMaxSide || h > kMaxSide) {
          throw Error(ErrorCode::kResourceLimit, "preprocess: resampling to " + std::to_string(w) + "x" +
                                                     std::to_string(h) + " exceeds the limit " + std::to_string(kMaxSide));
        }
        const bool shrinking = w < x.cols || h < x.rows;
        x = resized(x, w, h, rs->antialias && shrinking ? cv::INTER_AREA : cv_interpolation(rs->interpolation));
        spacing_x = rs->spacing_x;
        spacing_y = rs->spacing_y;
      } else if (const auto* cp = std::get_if<CropOrPadStep>(&step)) {
        x = crop_or_pad(x, cp->width, cp->height, cp->pad_value);
      } else if (const auto* f = std::get_if<FlipStep>(&step)) {
        cv::Mat flipped;
        cv::flip(x, flipped, f->horizontal ? 1 : 0);
        x = flipped;
      } else if (const auto* n = std::get_if<NormalizeStep>(&step)) {
        const cv::Mat all = x.reshape(1);  // statistics over every channel
        if (!n->channel_means.empty() || !n->channel_stds.empty()) {
          const std::size_t k = std::max(n->channel_means.size(), n->channel_stds.size());
          if (k != static_cast<std::size_t>(x.channels())) {
            throw Error(ErrorCode::kInvalidArgument, "preprocess: normalize has " + std::to_string(k) +
                                                         " per-channel values but the image has " +
                                                         std::to_string(x.channels()) + " channel(s)");
          }
          cv::Scalar m, sd;
          for (std::size_t c = 0; c < k; ++c) {
            m[static_cast<int>(c)] = n->channel_means.empty() ? n->mean : n->channel_means[c];
            sd[static_cast<int>(c)] = n->channel_stds.empty() ? n->std : n->channel_stds[c];
          }
          cv::subtract(x, m, x);
          cv::divide(x, sd, x);
        } else {
          double mean = n->mean, scale = 1.0 / n->std;
          if (n->mode == NormalizeStep::Mode::kZScore) {
            cv::Scalar m, sd;
            cv::meanStdDev(all, m, sd);
            mean = m[0];
            scale = sd[0] > 1e-12 ? 1.0 / sd[0] : 0.0;
          } else if (n->mode == NormalizeStep::Mode::kMinMax) {
            double lo = 0, hi = 0;
            cv::minMaxLoc(all, &lo, &hi);
            mean = lo;
            scale = hi > lo ? 1.0 / (hi - lo) : 0.0;
          }
          x.convertTo(x, -1, scale, -mean * scale);
        }
      } else if (const auto* rsc = std::get_if<RescaleStep>(&step)) {
        const double scale = (rsc->out_max - rsc->out_min) / (rsc->in_max - rsc->in_min);
        x.convertTo(x, -1, scale, rsc->out_min - rsc->in_min * scale);
        if (rsc->clip) {
          cv::min(x, std::max(rsc->out_min, rsc->out_max), x);
          cv::max(x, std::min(rsc->out_min, rsc->out_max), x);
        }
      } else if (const auto* co = std::get_if<ColorStep>(&step)) {
        if (co->to_rgb && x.channels() == 1) {
          cv::Mat rgb;
          cv::merge(std::vector<cv::Mat>{x, x, x}, rgb);
          x = rgb;
        } else if (!co->to_rgb && x.channels() == 3) {
          cv::Mat gray;
          cv::cvtColor(x, gray, cv::COLOR_RGB2GRAY);
          x = gray;
        }
      } else if (const auto* ch = std::get_if<ChannelsStep>(&step)) {
        channels = ch->replicate;
      }
    }
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
  medinfer::detail::parallel_for(images.size() - 1, threads, [&](std::size_t k) {
    const std::size_t i = k + 1;
    const auto [x, channels] = run_steps(spec, images[i], context_of(i));
    if (t.shape[1] != channels || t.shape[2] != x.rows || t.shape[3] != x.cols) {
      throw Error(ErrorCode::kInvalidArgument,
                  "apply_batch: image " + std::to_string(i) + " gives [" + std::to_string(channels) + ", " +
                      std::to_string(x.rows) + ", " + std::to_string(x.cols) + "], image 0 gave [" +
                      std::to_string(t.shape[1]) + ", " + std::to_string(t.shape[2]) + ", " +
                      std::to_string(t.shape[3]) + "]: add a resize or crop_or_pad step");
    }
    write_planes(x, channels, t.data.data() + per_image * i);
  });
  return t;
}

}  // namespace preprocess
}  // namespace medinfer
