// medinfer/tensor.hpp in Python: a Tensor is a float32 numpy array of its shape. Out of the library, the
// array owns the library's tensor (no copy); into it (Engine.run, a Python backend's output), the
// array's values are copied once into the Tensor's vector, which the C++ type owns by definition.
#include "common.hpp"

#include <cstring>

py::array_t<float> tensor_array(medinfer::Tensor&& t) {
  std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
  return py::array_t<float>(owned_array<medinfer::Tensor>(
      std::move(t), [](medinfer::Tensor& x) { return static_cast<void*>(x.data.data()); }, py::dtype::of<float>(),
      std::move(shape)));
}

medinfer::Tensor tensor_of(const py::handle& values, const char* who) {
  auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(values);
  if (!a) throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument, std::string(who) + ": expected an array of numbers");
  medinfer::Tensor t;
  t.shape.assign(a.shape(), a.shape() + a.ndim());
  t.data.resize(static_cast<std::size_t>(a.size()));
  if (!t.data.empty()) std::memcpy(t.data.data(), a.data(), t.data.size() * sizeof(float));
  return t;
}
