#include <medinfer/tensor.hpp>

namespace medinfer {

std::size_t Tensor::element_count() const noexcept {
  if (shape.empty()) return 0;
  std::size_t n = 1;
  for (auto d : shape) n *= d > 0 ? static_cast<std::size_t>(d) : 0;
  return n;
}

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace medinfer
