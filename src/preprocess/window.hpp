// Internal: the window curves, shared by the 2D (preprocess.cpp) and volume (volume_steps.cpp) paths.
#pragma once

#include <medinfer/preprocess.hpp>

#include <cstddef>

namespace medinfer::preprocess::detail {

/// The centre, width and curve a fixed or from_file window step uses for this input.
WindowStep::Function resolve_window(const WindowStep& w, const Context& context, double& center, double& width);

/// Applies the curve in place; output in [0, 1].
void apply_window_curve(float* x, std::size_t n, WindowStep::Function fn, double center, double width);

/// For a from_file window on a file with a VOI LUT Sequence and no window: applies the table (scaled
/// to [0, 1]) in place and returns true; otherwise returns false and changes nothing.
bool apply_file_voi_lut(const WindowStep& w, const Context& context, float* x, std::size_t n);

/// numpy.percentile's default (linear between closest ranks) over n values (copied).
double percentile(const float* x, std::size_t n, double q);

}  // namespace medinfer::preprocess::detail
