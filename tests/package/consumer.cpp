// Uses an installed medinfer through its public API only.
#include <medinfer/medinfer.hpp>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer MODEL_DIR\n";
    return 2;
  }
  const medinfer::BuildInfo info = medinfer::build_info();
  if (info.version != MEDINFER_VERSION_STRING) {
    std::cerr << "header/library version mismatch\n";
    return 1;
  }
  try {
    const auto pipeline = medinfer::Pipeline::open(argv[1]);
    medinfer::Image image(medinfer::PixelType::kInt16, 128, 128);
    const medinfer::Result r = pipeline.predict(image);
    std::cout << "medinfer " << info.version << " (LibTorch " << info.libtorch_version << "): " << r.model.name
              << " -> tier " << r.tier << " (" << r.reason << ")\n";
    // Many inputs in one call, as docs/series.md shows it: outcomes in order to a callback.
    std::vector<medinfer::Input> inputs{medinfer::Input::pixels(image), medinfer::Input::pixels(image)};
    medinfer::ManyOptions options;
    std::size_t ok = 0, progress = 0;
    options.on_outcome = [&](medinfer::Outcome&& o) { ok += o.ok() && o.result->probability == r.probability; };
    options.progress = [&](std::size_t done, std::size_t) { progress = done; };
    pipeline.predict_many(inputs, options);
    std::cout << "predict_many: " << ok << " of " << inputs.size() << " equal to predict()\n";
    return r.tier == "indeterminate" && ok == inputs.size() && progress == inputs.size() ? 0 : 1;
  } catch (const medinfer::Error& e) {
    std::cerr << medinfer::to_string(e.code()) << ": " << e.what() << '\n';
    return 1;
  }
}
