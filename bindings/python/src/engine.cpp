// medinfer/engine.hpp in Python: EngineOptions, BatchingOptions, Engine (open a verified package's
// model, run float32 arrays through it) and the Backend seam: register_backend(format, factory) with a
// Python factory returning an object with run(array) -> array and description() -> str, so a model
// format the library lacks (ONNX Runtime's Python API, a research model) runs behind the same
// pipeline, batcher, calibration and risk code. backend_formats lists what this process can run.
#include "common.hpp"

#include <medinfer/engine.hpp>

#include <memory>
#include <optional>

#include <pybind11/stl.h>

namespace {

// A Backend whose model is a Python object. run() is called from the library's threads: it takes the
// GIL for the call (so Python backends run one at a time; the library's own threads still overlap
// reading and preprocessing with it). Errors the object raises become Error(kInternal) naming the
// format (Engine's rule for a failing backend); a MedinferError keeps its code.
class PythonBackend final : public medinfer::Backend {
 public:
  PythonBackend(py::object model, std::string format)
      : model_(held_by_library(std::move(model))), format_(std::move(format)) {
    description_ = py::str(model_->attr("description")()).cast<std::string>();
  }
  medinfer::Tensor run(const medinfer::Tensor& input) const override {
    py::gil_scoped_acquire gil;
    // The input as a read-only array over the library's tensor: valid for this call only.
    std::vector<py::ssize_t> shape(input.shape.begin(), input.shape.end());
    py::array view(py::dtype::of<float>(), shape, input.data.data(), py::none());
    py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    medinfer::Tensor result;
    try {
      py::object out = model_->attr("run")(view);
      result = tensor_of(out, ("backend '" + format_ + "'").c_str());
    } catch (py::error_already_set& e) {
      throw medinfer::Error(medinfer::ErrorCode::kInternal, "backend '" + format_ + "' raised " + e.what());
    }
    // The view dies with this call: a backend that kept it would read freed memory later.
    if (view.ref_count() > 1) {
      throw medinfer::Error(medinfer::ErrorCode::kInternal,
                            "backend '" + format_ + "' kept a reference to its input array (copy it instead)");
    }
    return result;
  }
  std::string description() const override { return description_; }

 private:
  std::shared_ptr<py::object> model_;  // dropped under the GIL, from whichever thread closes the engine
  std::string format_, description_;
};

// The shared Engine a Python Engine object holds (Engine is move-only).
struct PyEngine {
  std::shared_ptr<medinfer::Engine> engine;
};

}  // namespace

void bind_engine(py::module_& m) {
  py::class_<medinfer::EngineOptions>(m, "EngineOptions", "How the model runs (medinfer/engine.hpp).")
      .def(py::init<>())
      .def_readwrite("device", &medinfer::EngineOptions::device, "'cpu' or 'cuda:N'")
      .def_readwrite("intra_op_threads", &medinfer::EngineOptions::intra_op_threads,
                     "LibTorch intra-op threads (process-wide); 0 leaves LibTorch's setting alone")
      .def_readwrite("half_precision", &medinfer::EngineOptions::half_precision, "float16 on CUDA");
  py::class_<medinfer::BatchingOptions>(m, "BatchingOptions", "The dynamic batcher (off when max_batch_size <= 1).")
      .def(py::init<>())
      .def_readwrite("max_batch_size", &medinfer::BatchingOptions::max_batch_size, "0 or 1: off; else 2..256 images merged into one model run")
      .def_readwrite("max_delay_us", &medinfer::BatchingOptions::max_delay_us, "the longest a batch waits to fill after its oldest request (0..1,000,000)")
      .def_readwrite("max_queue", &medinfer::BatchingOptions::max_queue, "requests waiting at most; beyond that predict raises OverloadedError");
  py::class_<PyEngine>(m, "Engine",
                       "Runs a verified package's model through the backend registered for its model.format "
                       "(medinfer::Engine): input shapes checked before, output shapes and finiteness after every "
                       "run; warmed up at open. Thread-safe.")
      .def_static(
          "open",
          [](const std::shared_ptr<medinfer::ModelPackage>& package, std::optional<medinfer::EngineOptions> options) {
            const medinfer::EngineOptions o = options.value_or(medinfer::EngineOptions{});
            py::gil_scoped_release release;
            return PyEngine{std::make_shared<medinfer::Engine>(medinfer::Engine::open(*package, o))};
          },
          py::arg("package"), py::arg("options") = py::none(),
          "Opens the model of a ModelPackage (package.verify_package) with EngineOptions. Raises UnsupportedError "
          "(no backend for the format, device, half precision), InvalidArgumentError (the model rejects its "
          "declared input), ModelIntegrityError. Releases the GIL.")
      .def(
          "run",
          [](const PyEngine& self, const py::object& input) {
            const medinfer::Tensor in = tensor_of(input, "Engine.run");
            medinfer::Tensor out;
            {
              py::gil_scoped_release release;
              out = self.engine->run(in);
            }
            return tensor_array(std::move(out));
          },
          py::arg("input"),
          "Runs the model on a float32 array (N, C, H, W) matching the package's input shape except N (e.g. "
          "Pipeline.prepare's); returns (N, output_count) logits, an array owning the library's tensor. The input "
          "is copied once into the library's Tensor. Releases the GIL.")
      .def_property_readonly("description", [](const PyEngine& self) { return self.engine->description(); },
                             "the backend's description, e.g. 'torchscript on cpu'");

  m.def(
      "register_backend",
      [](const std::string& format, const py::object& factory) {
        if (factory.is_none()) {
          throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument, "register_backend: factory is None");
        }
        auto held = held_by_library(factory);  // in the library's registry for the life of the process
        medinfer::register_backend(format, [held, format](const medinfer::ModelPackage& package,
                                                          const medinfer::EngineOptions& options) {
          py::gil_scoped_acquire gil;
          try {
            // The package as a reference for the call only: a factory that keeps it would hold a
            // dangling object, so that is refused (the reference count is compared before and after).
            py::object pkg = py::cast(&package, py::return_value_policy::reference);
            const auto before = pkg.ref_count();
            py::object model = (*held)(pkg, options);
            if (pkg.ref_count() > before) {
              throw medinfer::Error(medinfer::ErrorCode::kInvalidArgument,
                                    "backend '" + format + "': the factory kept a reference to the package (copy "
                                    "package.model_bytes and what else it needs instead)");
            }
            return std::unique_ptr<medinfer::Backend>(new PythonBackend(std::move(model), format));
          } catch (py::error_already_set& e) {
            throw medinfer::Error(medinfer::ErrorCode::kModelIntegrity,
                                  "backend '" + format + "' could not load the package: " + e.what());
          }
        });
      },
      py::arg("format"), py::arg("factory"),
      "Registers a Python backend for manifest model.format == format (process-wide; replaces an earlier one "
      "for engines opened afterwards). factory(package: ModelPackage, options: EngineOptions) returns an object "
      "with run(input: float32 array (N, ...)) -> array (N, output_count) and description() -> str; it reads "
      "the model from package.model_bytes (the package is valid during the call only: keeping it fails the open). "
      "run is called with the GIL held, one call at a time; its input is a read-only view of the library's "
      "tensor, valid during the call only (keeping it fails the prediction: copy it). An exception "
      "from factory fails Engine.open with ModelIntegrityError, one from run fails the prediction with "
      "InternalError.");
  m.def("backend_formats", &medinfer::backend_formats, "The model formats Engine.open can run now, sorted.");
}
