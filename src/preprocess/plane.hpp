// Internal: a 2D image being transformed by the steps (src/preprocess/steps.cpp), and the OpenCV
// operations on it (preprocess.cpp).
#pragma once

#include <medinfer/preprocess.hpp>

#include <opencv2/core.hpp>

#include <string>

namespace medinfer::preprocess::detail {

constexpr int kMaxSide = 16384;

/// One image through the steps: the float plane (1 or 3 channels), its pixel spacing, the output
/// channel count a "channels" step asks for, and what the file's header gives.
struct PlaneRun {
  cv::Mat x;
  double spacing_x = 1.0, spacing_y = 1.0;
  int channels = 1;
  const Context& context;
};

/// numpy.percentile's default over every value of x.
double percentile(const cv::Mat& x, double q);
/// Centred crop/pad of x to w x h (offsets floor((old - new) / 2)), padding with `pad`.
cv::Mat crop_or_pad(const cv::Mat& x, int w, int h, double pad);
/// x resized to w x h (x itself when the size is already right).
cv::Mat resized(const cv::Mat& x, int w, int h, int interpolation);
/// OpenCV's flag for an interpolation.
int cv_interpolation(Interpolation i);

}  // namespace medinfer::preprocess::detail
