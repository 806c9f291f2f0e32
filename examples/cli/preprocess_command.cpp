// medinfer preprocess --model DIR FILE --out OUT.npy: writes the exact tensor the model would receive,
// as a NumPy .npy file, so anyone can compare it with their own pipeline.
#include <medinfer/medinfer.hpp>

#include "cli_common.hpp"

#include <iostream>

#include <cstdint>
#include <fstream>
#include <memory>

namespace {

// NumPy format 1.0: magic, version, little-endian header length, a Python dict literal padded with
// spaces to a multiple of 64 bytes and ended by '\n', then the raw little-endian float32 data.
void write_npy(const std::string& path, const medinfer::Tensor& t) {
  std::string shape;
  for (std::size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
  shape = "(" + shape + (t.shape.size() == 1 ? ",)" : ")");  // a Python tuple
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const std::uint16_t len = static_cast<std::uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  const char len_le[2] = {static_cast<char>(len & 0xFF), static_cast<char>(len >> 8)};
  out.write(len_le, 2);
  out << header;
  out.write(reinterpret_cast<const char*>(t.data.data()), static_cast<std::streamsize>(t.data.size() * sizeof(float)));
  out.close();
  if (!out) throw medinfer::Error(medinfer::ErrorCode::kIo, path + ": cannot write");
}

}  // namespace

void add_preprocess_command(CLI::App& app, Runner& run) {
  struct Options {
    std::string model, input, out;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "preprocess", "preprocess --model DIR FILE --out OUT.npy: writes the exact float32 tensor the package's model "
                    "would receive for FILE (NumPy .npy); prints {input, out, shape, dtype}");
  cmd->add_option("--model", o->model, "the model package directory")->required();
  cmd->add_option("file", o->input, "the DICOM file")->required();
  cmd->add_option("--out", o->out, "the .npy file to write")->required();
  cmd->callback([o, &run] {
    run = [o] {
      // What Pipeline::predict feeds the model, from the library itself (Pipeline::prepare).
      const medinfer::Pipeline pipeline = medinfer::Pipeline::open(o->model);
      const medinfer::Tensor tensor = pipeline.prepare(o->input);
      write_npy(o->out, tensor);
      print_line(Json{{"input", o->input}, {"out", o->out}, {"shape", tensor.shape}, {"dtype", "float32"}});
      return 0;
    };
  });
}
