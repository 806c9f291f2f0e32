// medinfer preprocess --model DIR FILE --out OUT.npy: writes the exact tensor the model would receive,
// as a NumPy .npy file, so anyone can compare it with their own pipeline.
#include <medinfer/medinfer.hpp>

#include "cli_common.hpp"

#include <iostream>

#include <cstdint>
#include <fstream>
#include <optional>

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

int run_preprocess(const std::vector<std::string>& args) {
  std::optional<std::string> model, out, input;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "--model" || a == "--out") && i + 1 < args.size()) {
      (a == "--model" ? model : out) = args[++i];
    } else if (a.size() > 1 && a[0] == '-') {
      usage_error("preprocess: unknown option '" + a + "'");
    } else if (input) {
      usage_error("preprocess: one FILE only");
    } else {
      input = a;
    }
  }
  if (!model || !out || !input) usage_error("preprocess: --model DIR FILE --out OUT.npy are required");
  // Past the arguments, every failure is the model's or the input's: exit 1 (2 is for usage errors).
  try {
    const auto package = medinfer::ModelPackage::open(*model);  // the verified manifest, as the pipeline reads it
    const Json manifest = Json::parse(package.manifest_text());
    const auto spec = medinfer::preprocess::parse_spec(manifest.at("preprocessing").dump());
    // Exactly what Pipeline::predict does: the file's VOI window goes along for "from_file" windows.
    const medinfer::dicom::Instance instance = medinfer::dicom::read_instance(*input, spec.read_options());
    const medinfer::dicom::ImageHeader& h = instance.header;
    const medinfer::preprocess::Context context = medinfer::preprocess::context_from(h);
    const medinfer::Tensor tensor = medinfer::preprocess::apply(spec, instance.image, context);
    write_npy(*out, tensor);
    print_line(Json{{"input", *input}, {"out", *out}, {"shape", tensor.shape}, {"dtype", "float32"}});
  } catch (const medinfer::Error& e) {
    std::cerr << "medinfer: " << medinfer::to_string(e.code()) << ": " << e.what() << '\n';
    return 1;
  }
  return 0;
}
