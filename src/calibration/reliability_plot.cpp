// The reliability diagram, drawn with OpenCV (core, imgproc, imgcodecs) and written as PNG.
// OpenCV's second home in the library (the first is preprocess/): a picture is an image.
#include <medinfer/calibration.hpp>
#include <medinfer/error.hpp>

#include <fmt/format.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace medinfer::calibration {

void write_reliability_png(const std::string& path, const Metrics& before, const Metrics& after,
                           const std::string& title) {
  const int W = 900, H = 760, left = 90, right = 30, top = 80, bottom = 110;
  const int pw = W - left - right, ph = H - top - bottom;
  cv::Mat img(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  const cv::Scalar black(0, 0, 0), grey(170, 170, 170), blue(200, 110, 30), orange(30, 140, 250);
  auto X = [&](double v) { return left + static_cast<int>(v * pw + 0.5); };
  auto Y = [&](double v) { return top + ph - static_cast<int>(v * ph + 0.5); };
  const auto font = cv::FONT_HERSHEY_SIMPLEX;

  for (int i = 0; i <= 10; ++i) {  // grid and ticks
    const double v = i / 10.0;
    cv::line(img, {X(v), Y(0)}, {X(v), Y(1)}, cv::Scalar(235, 235, 235), 1);
    cv::line(img, {X(0), Y(v)}, {X(1), Y(v)}, cv::Scalar(235, 235, 235), 1);
    cv::putText(img, fmt::format("{:.1f}", v), {X(v) - 14, Y(0) + 22}, font, 0.45, black, 1, cv::LINE_AA);
    cv::putText(img, fmt::format("{:.1f}", v), {left - 40, Y(v) + 5}, font, 0.45, black, 1, cv::LINE_AA);
  }
  for (int i = 0; i < 40; i += 2) {  // the diagonal, dashed: perfect calibration
    cv::line(img, {X(i / 40.0), Y(i / 40.0)}, {X((i + 1) / 40.0), Y((i + 1) / 40.0)}, grey, 2, cv::LINE_AA);
  }
  const bool two = !after.bins.empty();
  auto draw = [&](const Metrics& m, const cv::Scalar& colour, int series) {
    for (const ReliabilityBin& b : m.bins) {
      if (b.count == 0) continue;
      const double width = (b.upper - b.lower) / (two ? 2.0 : 1.0);
      const double x0 = b.lower + series * width;
      cv::rectangle(img, {X(x0) + 1, Y(b.fraction_positive)}, {X(x0 + width) - 1, Y(0)}, colour, cv::FILLED);
      cv::circle(img, {X(b.mean_probability), Y(b.fraction_positive)}, 4, colour * 0.6, cv::FILLED, cv::LINE_AA);
      // The count above the bar, or inside its top (in white) when the bar reaches the top of the plot.
      const int above = Y(b.fraction_positive) - 6 - 14 * series;
      const bool inside = above < top + 4;
      cv::putText(img, std::to_string(b.count), {X(x0) + 2, inside ? Y(b.fraction_positive) + 16 + 14 * series : above},
                  font, 0.38, inside ? cv::Scalar(255, 255, 255) : colour * 0.6, 1, cv::LINE_AA);
    }
  };
  draw(before, blue, 0);
  if (two) draw(after, orange, 1);
  cv::rectangle(img, {X(0), Y(1)}, {X(1), Y(0)}, black, 1);

  cv::putText(img, title, {left, 35}, font, 0.7, black, 2, cv::LINE_AA);
  cv::putText(img, "bars: observed frequency of positives per bin (number = cases); dots: mean predicted p",
              {left, 60}, font, 0.45, black, 1, cv::LINE_AA);
  cv::putText(img, "mean predicted probability p(positive), 15 equal-width bins", {left + 150, H - 60}, font, 0.55,
              black, 1, cv::LINE_AA);
  cv::Mat label(24, ph, CV_8UC3, cv::Scalar(255, 255, 255));
  cv::putText(label, "observed frequency of label 1", {ph / 2 - 140, 18}, font, 0.55, black, 1, cv::LINE_AA);
  cv::rotate(label, label, cv::ROTATE_90_COUNTERCLOCKWISE);
  label.copyTo(img(cv::Rect(8, top, 24, ph)));
  const std::string legend_before =
      fmt::format("{}: ECE {:.4f}, Brier {:.4f}, AUC {:.4f}", two ? "before" : "probabilities", before.ece_positive,
                  before.brier, before.auc);
  cv::rectangle(img, {left, H - 38}, {left + 14, H - 26}, blue, cv::FILLED);
  cv::putText(img, legend_before, {left + 20, H - 27}, font, 0.5, black, 1, cv::LINE_AA);
  if (two) {
    cv::rectangle(img, {left, H - 18}, {left + 14, H - 6}, orange, cv::FILLED);
    cv::putText(img, fmt::format("after: ECE {:.4f}, Brier {:.4f}, AUC {:.4f}", after.ece_positive, after.brier,
                                 after.auc),
                {left + 20, H - 7}, font, 0.5, black, 1, cv::LINE_AA);
  }
  bool ok = false;
  try {
    ok = cv::imwrite(path, img);
  } catch (const cv::Exception& e) {
    throw Error(ErrorCode::kIo, path + ": cannot write the reliability diagram: " + e.what());
  }
  if (!ok) throw Error(ErrorCode::kIo, path + ": cannot write the reliability diagram (is the directory writable?)");
}

}  // namespace medinfer::calibration
