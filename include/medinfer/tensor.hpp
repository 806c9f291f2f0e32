// medinfer::Tensor: a dense float32 array with a shape, the form a model's input and output take.
#pragma once

#include <medinfer/export.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace medinfer {

/// Row-major float32 data with a shape (for a model input: N, C, H, W). A plain value type.
struct MEDINFER_API Tensor {
  std::vector<std::int64_t> shape;
  std::vector<float> data;

  /// Product of the shape; 0 for an empty shape.
  std::size_t element_count() const noexcept;
  /// "[1, 1, 64, 64]"
  std::string shape_string() const;
};

}  // namespace medinfer
