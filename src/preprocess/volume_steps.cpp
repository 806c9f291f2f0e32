// Preprocessing for volumes: the same declared steps in 3D. Resampling is separable (x, then y, then
// z), each axis through precomputed taps (nearest: 1, linear: 2, area: the exact box overlap), and
// runs on all cores; crop, pad, flip and reorient only move values (bit-exact).
#include <medinfer/error.hpp>
#include <medinfer/preprocess.hpp>

#include "core/parallel.hpp"
#include "preprocess/grid.hpp"
#include "preprocess/steps.hpp"
#include "preprocess/window.hpp"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace medinfer::preprocess {
namespace detail {
namespace {

constexpr int kMaxSide = 16384;

// For each output index, the input indices and weights that make it.
struct Taps {
  std::vector<std::uint32_t> first;  // offset into index/weight, per output (+1 at the end)
  std::vector<std::uint32_t> index;
  std::vector<float> weight;
};


Taps make_taps(std::size_t n_in, std::size_t n_out, Mode mode) {
  Taps t;
  t.first.reserve(n_out + 1);
  const double scale = static_cast<double>(n_in) / static_cast<double>(n_out);
  if (mode == Mode::kArea && scale <= 1.0) mode = Mode::kLinear;  // area only means something when shrinking
  for (std::size_t o = 0; o < n_out; ++o) {
    t.first.push_back(static_cast<std::uint32_t>(t.index.size()));
    if (mode == Mode::kNearest) {
      const auto i = std::min<std::size_t>(static_cast<std::size_t>(std::floor((o + 0.5) * scale)), n_in - 1);
      t.index.push_back(static_cast<std::uint32_t>(i));
      t.weight.push_back(1.0f);
    } else if (mode == Mode::kLinear) {
      double x = (o + 0.5) * scale - 0.5;
      x = std::min(std::max(x, 0.0), static_cast<double>(n_in - 1));
      const auto i0 = static_cast<std::size_t>(std::floor(x));
      const std::size_t i1 = std::min(i0 + 1, n_in - 1);
      const double f = x - static_cast<double>(i0);
      t.index.push_back(static_cast<std::uint32_t>(i0));
      t.weight.push_back(static_cast<float>(1.0 - f));
      if (i1 != i0 && f > 0.0) {
        t.index.push_back(static_cast<std::uint32_t>(i1));
        t.weight.push_back(static_cast<float>(f));
      }
    } else {  // exact box average over [o * scale, (o + 1) * scale)
      const double a = o * scale, b = (o + 1) * scale;
      for (auto i = static_cast<std::size_t>(std::floor(a)); i < n_in && static_cast<double>(i) < b; ++i) {
        const double overlap = std::min(b, static_cast<double>(i + 1)) - std::max(a, static_cast<double>(i));
        if (overlap > 1e-12) {
          t.index.push_back(static_cast<std::uint32_t>(i));
          t.weight.push_back(static_cast<float>(overlap / scale));
        }
      }
    }
  }
  t.first.push_back(static_cast<std::uint32_t>(t.index.size()));
  return t;
}

}  // namespace

void fail(std::size_t index, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "preprocessing[" + std::to_string(index) + "]: " + what);
}

void resample_axis(Grid& g, int axis, std::size_t n_out, Mode mode, unsigned threads) {
  const std::size_t n_in = axis == 0 ? g.w : axis == 1 ? g.h : g.d;
  if (n_out == n_in) return;
  const Taps t = make_taps(n_in, n_out, mode);
  Grid out = g.shape_only();
  if (axis == 0) out.w = n_out;
  if (axis == 1) out.h = n_out;
  if (axis == 2) out.d = n_out;
  out.v.assign(out.size(), 0.0f);
  const float* src = g.v.data();
  float* dst = out.v.data();
  if (axis == 0) {
    medinfer::detail::parallel_for(g.d, threads, [&](std::size_t z) {
      for (std::size_t y = 0; y < g.h; ++y) {
        const float* row = src + (z * g.h + y) * g.w;
        float* o = dst + (z * out.h + y) * out.w;
        for (std::size_t x = 0; x < n_out; ++x) {
          float acc = 0.0f;
          for (std::uint32_t k = t.first[x]; k < t.first[x + 1]; ++k) acc += t.weight[k] * row[t.index[k]];
          o[x] = acc;
        }
      }
    });
  } else if (axis == 1) {
    medinfer::detail::parallel_for(g.d, threads, [&](std::size_t z) {
      for (std::size_t y = 0; y < n_out; ++y) {
        float* o = dst + (z * out.h + y) * g.w;
        for (std::uint32_t k = t.first[y]; k < t.first[y + 1]; ++k) {
          const float wk = t.weight[k];
          const float* row = src + (z * g.h + t.index[k]) * g.w;
          for (std::size_t x = 0; x < g.w; ++x) o[x] += wk * row[x];
        }
      }
    });
  } else {
    const std::size_t plane = g.w * g.h;
    medinfer::detail::parallel_for(n_out, threads, [&](std::size_t z) {
      float* o = dst + z * plane;
      for (std::uint32_t k = t.first[z]; k < t.first[z + 1]; ++k) {
        const float wk = t.weight[k];
        const float* p = src + static_cast<std::size_t>(t.index[k]) * plane;
        for (std::size_t i = 0; i < plane; ++i) o[i] += wk * p[i];
      }
    });
  }
  // The first sample's centre moves with the grid (half-pixel-centre mapping).
  const double old_spacing = g.spacing[static_cast<std::size_t>(axis)];
  const double new_spacing = old_spacing * static_cast<double>(n_in) / static_cast<double>(n_out);
  const double shift = (new_spacing - old_spacing) / 2.0;
  for (int c = 0; c < 3; ++c) out.origin[static_cast<std::size_t>(c)] += g.direction[static_cast<std::size_t>(axis * 3 + c)] * shift;
  out.spacing[static_cast<std::size_t>(axis)] = new_spacing;
  g = std::move(out);
}

std::size_t checked_side(std::size_t index, double v, const char* what) {
  const auto n = static_cast<long long>(std::llround(v));
  if (n > kMaxSide) {
    throw Error(ErrorCode::kResourceLimit, "preprocessing[" + std::to_string(index) + "]: " + what + " of " +
                                               std::to_string(n) + " exceeds the limit " + std::to_string(kMaxSide));
  }
  return static_cast<std::size_t>(std::max<long long>(1, n));
}

Mode mode_of(std::size_t index, Interpolation i) {
  switch (i) {
    case Interpolation::kArea: return Mode::kArea;
    case Interpolation::kLinear: return Mode::kLinear;
    case Interpolation::kNearest: return Mode::kNearest;
    case Interpolation::kCubic: break;
  }
  fail(index, "interpolation cubic is available for 2D images only");
}

void crop_or_pad(Grid& g, std::size_t w, std::size_t h, std::size_t d, float pad) {
  Grid out = g.shape_only();
  out.w = w;
  out.h = h;
  out.d = d;
  out.v.assign(out.size(), pad);
  auto offsets = [](std::size_t from, std::size_t to) {
    const std::size_t s = from > to ? (from - to) / 2 : 0, t = to > from ? (to - from) / 2 : 0;
    return std::array<std::size_t, 3>{s, t, std::min(from, to)};
  };
  const auto [sx, dx, cw] = offsets(g.w, w);
  const auto [sy, dy, ch] = offsets(g.h, h);
  const auto [sz, dz, cd] = offsets(g.d, d);
  for (std::size_t z = 0; z < cd; ++z) {
    for (std::size_t y = 0; y < ch; ++y) {
      std::memcpy(out.v.data() + ((z + dz) * h + y + dy) * w + dx, g.v.data() + ((z + sz) * g.h + y + sy) * g.w + sx,
                  cw * sizeof(float));
    }
  }
  // The origin follows the voxel now at index 0 (negative shift when padding).
  const double shift[3] = {static_cast<double>(sx) - static_cast<double>(dx), static_cast<double>(sy) - static_cast<double>(dy),
                           static_cast<double>(sz) - static_cast<double>(dz)};
  for (int a = 0; a < 3; ++a) {
    for (int c = 0; c < 3; ++c) {
      out.origin[static_cast<std::size_t>(c)] +=
          g.direction[static_cast<std::size_t>(a * 3 + c)] * g.spacing[static_cast<std::size_t>(a)] * shift[a];
    }
  }
  g = std::move(out);
}

void permute_flip(Grid& g, const std::array<int, 3>& from_axis, const std::array<bool, 3>& flip) {
  const std::array<std::size_t, 3> n_in{g.w, g.h, g.d};
  const std::array<std::ptrdiff_t, 3> stride_in{1, static_cast<std::ptrdiff_t>(g.w), static_cast<std::ptrdiff_t>(g.w * g.h)};
  Grid out = g.shape_only();
  std::array<std::size_t, 3> n_out{};
  std::array<std::ptrdiff_t, 3> step{};
  std::ptrdiff_t base = 0;
  for (int a = 0; a < 3; ++a) {
    const int src = from_axis[static_cast<std::size_t>(a)];
    n_out[static_cast<std::size_t>(a)] = n_in[static_cast<std::size_t>(src)];
    step[static_cast<std::size_t>(a)] = flip[static_cast<std::size_t>(a)] ? -stride_in[static_cast<std::size_t>(src)]
                                                                          : stride_in[static_cast<std::size_t>(src)];
    if (flip[static_cast<std::size_t>(a)]) {
      base += stride_in[static_cast<std::size_t>(src)] * static_cast<std::ptrdiff_t>(n_in[static_cast<std::size_t>(src)] - 1);
    }
    out.spacing[static_cast<std::size_t>(a)] = g.spacing[static_cast<std::size_t>(src)];
    for (int c = 0; c < 3; ++c) {
      const double d = g.direction[static_cast<std::size_t>(src * 3 + c)];
      out.direction[static_cast<std::size_t>(a * 3 + c)] = flip[static_cast<std::size_t>(a)] ? -d : d;
    }
  }
  for (int a = 0; a < 3; ++a) {
    if (!flip[static_cast<std::size_t>(a)]) continue;
    const int src = from_axis[static_cast<std::size_t>(a)];
    for (int c = 0; c < 3; ++c) {
      out.origin[static_cast<std::size_t>(c)] += g.direction[static_cast<std::size_t>(src * 3 + c)] *
                                                 g.spacing[static_cast<std::size_t>(src)] *
                                                 static_cast<double>(n_in[static_cast<std::size_t>(src)] - 1);
    }
  }
  out.w = n_out[0];
  out.h = n_out[1];
  out.d = n_out[2];
  out.v.resize(out.size());
  for (std::size_t k = 0; k < out.d; ++k) {
    for (std::size_t j = 0; j < out.h; ++j) {
      std::ptrdiff_t p = base + static_cast<std::ptrdiff_t>(k) * step[2] + static_cast<std::ptrdiff_t>(j) * step[1];
      float* o = out.v.data() + (k * out.h + j) * out.w;
      for (std::size_t i = 0; i < out.w; ++i, p += step[0]) o[i] = g.v[static_cast<std::size_t>(p)];
    }
  }
  g = std::move(out);
}

void reorient(Grid& g, std::size_t index, const std::string& axes) {
  // Patient LPS: +x = L, +y = P, +z = S.
  std::array<int, 3> from{-1, -1, -1};
  std::array<bool, 3> flip{};
  std::array<bool, 3> used{};
  for (int a = 0; a < 3; ++a) {
    const char c = axes[static_cast<std::size_t>(a)];
    const int patient = (c == 'L' || c == 'R') ? 0 : (c == 'P' || c == 'A') ? 1 : 2;
    const double sign = (c == 'L' || c == 'P' || c == 'S') ? 1.0 : -1.0;
    int best = -1;
    double best_abs = -1.0;
    for (int src = 0; src < 3; ++src) {
      const double v = std::abs(g.direction[static_cast<std::size_t>(src * 3 + patient)]);
      if (!used[static_cast<std::size_t>(src)] && v > best_abs) {
        best_abs = v;
        best = src;
      }
    }
    if (best < 0 || best_abs < 1e-6) fail(index, "reorient: the volume's direction has no axis along " + std::string(1, c));
    used[static_cast<std::size_t>(best)] = true;
    from[static_cast<std::size_t>(a)] = best;
    flip[static_cast<std::size_t>(a)] = g.direction[static_cast<std::size_t>(best * 3 + patient)] * sign < 0.0;
  }
  if (from == std::array<int, 3>{0, 1, 2} && !flip[0] && !flip[1] && !flip[2]) return;
  permute_flip(g, from, flip);
}

}  // namespace detail

Tensor apply_volume(const Spec& spec, const Volume& volume, const Context& context, unsigned threads) {
  if (volume.empty()) throw Error(ErrorCode::kInvalidArgument, "preprocess: the volume is empty");
  spec.validate();
  detail::Grid g;
  g.w = volume.width();
  g.h = volume.height();
  g.d = volume.depth();
  g.spacing = volume.spacing();
  g.origin = volume.origin();
  g.direction = volume.direction();
  g.v.resize(g.size());
  {
    const auto* p = static_cast<const std::uint8_t*>(volume.data());
    const PixelType t = volume.pixel_type();
    auto convert = [&](auto tag) {
      using T = decltype(tag);
      for (std::size_t i = 0; i < g.v.size(); ++i) {
        T v;
        std::memcpy(&v, p + i * sizeof(T), sizeof(T));
        g.v[i] = static_cast<float>(v);
      }
    };
    switch (t) {
      case PixelType::kFloat32: std::memcpy(g.v.data(), p, g.v.size() * sizeof(float)); break;
      case PixelType::kFloat64: convert(double{}); break;
      case PixelType::kUInt8: convert(std::uint8_t{}); break;
      case PixelType::kInt8: convert(std::int8_t{}); break;
      case PixelType::kUInt16: convert(std::uint16_t{}); break;
      case PixelType::kInt16: convert(std::int16_t{}); break;
      case PixelType::kUInt32: convert(std::uint32_t{}); break;
      case PixelType::kInt32: convert(std::int32_t{}); break;
    }
  }
  detail::VolumeRun run{g, context, threads, 0, 1};
  for (run.index = 0; run.index < spec.steps.size(); ++run.index) detail::apply_step(spec.steps[run.index], run);
  const int channels = run.channels;
  Tensor t;
  t.shape = {1, channels, static_cast<std::int64_t>(g.d), static_cast<std::int64_t>(g.h), static_cast<std::int64_t>(g.w)};
  t.data.resize(g.size() * static_cast<std::size_t>(channels));
  for (int c = 0; c < channels; ++c) std::memcpy(t.data.data() + g.size() * static_cast<std::size_t>(c), g.v.data(), g.size() * sizeof(float));
  return t;
}

}  // namespace medinfer::preprocess
