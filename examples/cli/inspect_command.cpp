// `medinfer inspect FILE... [--json]`: what a DICOM file holds and what its pixels decode to.
#include "cli_common.hpp"

#include <medinfer/dicom.hpp>

#include <iostream>
#include <memory>
#include <optional>

namespace {

// What every object's header says; a non-image object (an SR, a presentation state) is described by
// this alone, with "image": false.
Json header_fields(const std::string& path, const medinfer::dicom::ImageHeader& h) {
  Json j;
  j["input"] = path;
  j["image"] = h.has_pixel_data;
  j["transfer_syntax_uid"] = h.transfer_syntax_uid;
  j["transfer_syntax_name"] = h.transfer_syntax_name;
  j["sop_class_uid"] = h.sop_class_uid;
  j["modality"] = h.modality;
  j["warnings"] = Json::array();
  for (const medinfer::dicom::HeaderWarning& w : h.warnings) {
    j["warnings"].push_back({{"code", medinfer::dicom::to_string(w.kind)}, {"tag", w.tag}, {"message", w.message}});
  }
  return j;
}

Json describe(const std::string& path) {
  {
    const medinfer::dicom::ImageHeader h = medinfer::dicom::read_header(path);
    if (!h.has_pixel_data) return header_fields(path, h);
  }
  const medinfer::dicom::StoredPixels px = medinfer::dicom::read_stored_pixels(path);
  const medinfer::dicom::ImageHeader& h = px.header;
  const medinfer::dicom::StoredStatistics st = medinfer::dicom::statistics(px);
  Json j = header_fields(path, h);
  j["rows"] = h.rows;
  j["columns"] = h.columns;
  j["frames"] = h.frames;
  j["samples_per_pixel"] = h.samples_per_pixel;
  j["photometric_interpretation"] = h.photometric_interpretation;
  j["bits_allocated"] = h.bits_allocated;
  j["bits_stored"] = h.bits_stored;
  j["pixel_representation"] = h.pixel_signed ? 1 : 0;
  j["stored"] = {{"dtype", medinfer::to_string(px.type)},
                 {"shape", {px.frames, px.rows, px.columns, px.samples}},
                 {"photometric", px.photometric},
                 {"min", st.min},
                 {"max", st.max},
                 {"mean", st.mean},
                 {"sha256", st.sha256}};
  return j;
}

void print_text(const Json& j) {
  if (j.contains("error")) {
    std::cout << j["input"].get<std::string>() << ": error " << j["error"]["code"].get<std::string>() << ": "
              << j["error"]["message"].get<std::string>() << '\n';
    return;
  }
  if (!j["image"].get<bool>()) {
    std::cout << j["input"].get<std::string>() << '\n'
              << "  transfer syntax  " << j["transfer_syntax_uid"].get<std::string>() << " ("
              << j["transfer_syntax_name"].get<std::string>() << ")\n"
              << "  SOP class        " << j["sop_class_uid"].get<std::string>() << "  modality "
              << j["modality"].get<std::string>() << '\n'
              << "  not an image     no Pixel Data (a structured report, presentation state, ...)\n";
    return;
  }
  const Json& s = j["stored"];
  std::cout << j["input"].get<std::string>() << '\n'
            << "  transfer syntax  " << j["transfer_syntax_uid"].get<std::string>() << " ("
            << j["transfer_syntax_name"].get<std::string>() << ")\n"
            << "  SOP class        " << j["sop_class_uid"].get<std::string>() << "  modality "
            << j["modality"].get<std::string>() << '\n'
            << "  size             " << j["frames"] << " frame(s) x " << j["rows"] << " x " << j["columns"] << " x "
            << j["samples_per_pixel"] << "  " << j["photometric_interpretation"].get<std::string>() << '\n'
            << "  bits             allocated " << j["bits_allocated"] << ", stored " << j["bits_stored"]
            << ", representation " << j["pixel_representation"] << '\n'
            << "  stored values    " << s["dtype"].get<std::string>() << " " << s["shape"].dump() << " "
            << s["photometric"].get<std::string>() << "  min " << s["min"] << " max " << s["max"] << " mean "
            << s["mean"] << '\n'
            << "  sha256           " << s["sha256"].get<std::string>() << '\n';
  for (const Json& w : j["warnings"]) {
    std::cout << "  warning          " << w["code"].get<std::string>() << " " << w["tag"].get<std::string>() << ": "
              << w["message"].get<std::string>() << '\n';
  }
}

}  // namespace

namespace {

int run_inspect(const std::vector<std::string>& inputs, bool json) {
  int status = 0;
  for (const std::string& path : inputs) {
    Json j;
    try {
      j = describe(path);
    } catch (const medinfer::Error& e) {
      j = error_json(path, e);
      status = 1;
    }
    if (json) {
      print_line(j);
    } else {
      print_text(j);
    }
  }
  return status;
}

}  // namespace

void add_inspect_command(CLI::App& app, Runner& run) {
  struct Options {
    std::vector<std::string> inputs;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("inspect", "Describes each DICOM FILE and decodes all its frames (inspect FILE... [--json])");
  cmd->add_option("files", o->inputs, "DICOM files")->required();
  cmd->add_flag("--json", o->json,
                "one object per file: {input, image: true, transfer_syntax_uid, transfer_syntax_name, sop_class_uid, "
                "modality, rows, columns, frames, samples_per_pixel, photometric_interpretation, bits_allocated, bits_stored, "
                "pixel_representation, warnings: [{code, tag, message}], stored: {dtype, shape, photometric, min, max, mean, "
                "sha256}}; a non-image object (an SR, ...): {input, image: false, transfer_syntax_uid, "
                "transfer_syntax_name, sop_class_uid, modality, warnings}; or {input, error: {code, message}}");
  cmd->footer("'stored' describes the decoded stored values of all frames, shaped (frames, rows, columns, samples) "
              "(docs/dicom.md).\nExit status: 0 all files decoded (or described, for non-image objects), 1 any file failed, 2 "
              "usage error.");
  cmd->callback([o, &run] { run = [o] { return run_inspect(o->inputs, o->json); }; });
}
