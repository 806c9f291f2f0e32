// medinfer.dicom: the Python mirror of medinfer/dicom.hpp, series.hpp and deidentify.hpp: same names,
// numpy arrays for pixels, dicts for headers; paths as str or os.PathLike. The GIL is released while
// files are read and decoded.
#include <medinfer/medinfer.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "common.hpp"

#include <cstring>

namespace py = pybind11;
namespace dicom = medinfer::dicom;

namespace {

py::dtype dtype_of(medinfer::PixelType t) { return py::dtype(medinfer::to_string(t)); }

// An array over memory `owner` holds (C order): the array keeps the owner alive, nothing is copied.
template <class Owner>
py::array owned_array(Owner&& value, void* (*data_of)(Owner&), medinfer::PixelType type, std::vector<py::ssize_t> shape) {
  auto* owner = new Owner(std::move(value));
  py::capsule keep(owner, [](void* p) { delete static_cast<Owner*>(p); });
  return py::array(dtype_of(type), shape, data_of(*owner), keep);
}

py::dict header_dict(const dicom::ImageHeader& h) {
  py::dict d;
  d["sop_class_uid"] = h.sop_class_uid;
  d["sop_instance_uid"] = h.sop_instance_uid;
  d["study_instance_uid"] = h.study_instance_uid;
  d["series_instance_uid"] = h.series_instance_uid;
  d["frame_of_reference_uid"] = h.frame_of_reference_uid;
  d["transfer_syntax_uid"] = h.transfer_syntax_uid;
  d["transfer_syntax_name"] = h.transfer_syntax_name;
  d["modality"] = h.modality;
  d["body_part_examined"] = h.body_part_examined;
  d["manufacturer"] = h.manufacturer;
  d["manufacturer_model_name"] = h.manufacturer_model_name;
  d["study_date"] = h.study_date;
  d["series_date"] = h.series_date;
  d["series_description"] = h.series_description;
  d["image_type"] = h.image_type;
  d["photometric_interpretation"] = h.photometric_interpretation;
  d["rows"] = h.rows;
  d["columns"] = h.columns;
  d["frames"] = h.frames;
  d["samples_per_pixel"] = h.samples_per_pixel;
  d["bits_allocated"] = h.bits_allocated;
  d["bits_stored"] = h.bits_stored;
  d["pixel_signed"] = h.pixel_signed;
  d["has_pixel_data"] = h.has_pixel_data;
  d["instance_number"] = h.instance_number;
  d["rescale_slope"] = h.rescale_slope;
  d["rescale_intercept"] = h.rescale_intercept;
  if (h.has_window) {
    d["window_center"] = h.window_center;
    d["window_width"] = h.window_width;
  }
  d["voi_lut_function"] = h.voi_lut_function;
  if (h.has_pixel_spacing) d["pixel_spacing"] = h.pixel_spacing;
  if (h.has_position) d["image_position"] = h.image_position;
  if (h.has_orientation) d["image_orientation"] = h.image_orientation;
  d["slice_thickness"] = h.slice_thickness;
  py::list warnings;
  for (const dicom::HeaderWarning& w : h.warnings) {
    py::dict one;
    one["code"] = dicom::to_string(w.kind);
    one["tag"] = w.tag;
    one["message"] = w.message;
    warnings.append(one);
  }
  d["warnings"] = warnings;
  return d;
}

dicom::ReadOptions read_options(bool apply_modality_lut, std::uint32_t frame, bool convert_color,
                                bool invert_monochrome1) {
  dicom::ReadOptions o;
  o.apply_modality_lut = apply_modality_lut;
  o.frame = frame;
  o.convert_color = convert_color;
  o.invert_monochrome1 = invert_monochrome1;
  return o;
}

// The image's pixels as an array sharing the library's buffer.
py::array image_array(medinfer::Image&& image) {
  std::vector<py::ssize_t> shape = {static_cast<py::ssize_t>(image.height()), static_cast<py::ssize_t>(image.width())};
  if (image.channels() > 1) shape.push_back(static_cast<py::ssize_t>(image.channels()));
  const medinfer::PixelType type = image.pixel_type();
  return owned_array<medinfer::Image>(std::move(image), [](medinfer::Image& i) { return i.mutable_data(); }, type, shape);
}

}  // namespace

void bind_dicom(py::module_& m) {
  m.doc() = "DICOM reading, series and de-identification (medinfer/dicom.hpp, series.hpp, deidentify.hpp).";
  m.def(
      "read_instance",
      [](const Path& path, bool apply_modality_lut, std::uint32_t frame, bool convert_color,
         bool invert_monochrome1) {
        dicom::Instance inst;
        {
          py::gil_scoped_release release;
          inst = dicom::read_instance(path.string(), read_options(apply_modality_lut, frame, convert_color, invert_monochrome1));
        }
        py::dict header = header_dict(inst.header);
        return py::make_tuple(image_array(std::move(inst.image)), header);
      },
      py::arg("path"), py::arg("apply_modality_lut") = true, py::arg("frame") = 0, py::arg("convert_color") = true,
      py::arg("invert_monochrome1") = false,
      "One frame as (array, header): (rows, columns) float32 modality values for grayscale, (rows, columns, 3) RGB "
      "for colour. Raises InvalidDicomError, UnsupportedError, ResourceLimitError, NotFoundError.");
  m.def(
      "read_stored_pixels",
      [](const Path& path) {
        dicom::StoredPixels px;
        {
          py::gil_scoped_release release;
          px = dicom::read_stored_pixels(path.string());
        }
        const std::vector<py::ssize_t> shape = {static_cast<py::ssize_t>(px.frames), static_cast<py::ssize_t>(px.rows),
                                                static_cast<py::ssize_t>(px.columns), static_cast<py::ssize_t>(px.samples)};
        const std::string photometric = px.photometric;
        const medinfer::PixelType type = px.type;
        py::array a = owned_array<std::vector<std::uint8_t>>(
            std::move(px.data), [](std::vector<std::uint8_t>& d) { return static_cast<void*>(d.data()); }, type, shape);
        return py::make_tuple(a, photometric);
      },
      py::arg("path"),
      "All frames' stored values as (array shaped (frames, rows, columns, samples), photometric): no rescale, "
      "no LUT (docs/dicom.md).");
  m.def(
      "read_header",
      [](const Path& path) {
        dicom::ImageHeader h;
        {
          py::gil_scoped_release release;
          h = dicom::read_header(path.string());
        }
        return header_dict(h);
      },
      py::arg("path"),
      "The header as a dict; pixel data is bounds-checked but not decoded.");
  m.def(
      "read_patient_identifiers",
      [](const Path& path) {
        const dicom::PatientIdentifiers p = dicom::read_patient_identifiers(path.string());
        py::dict d;
        d["patient_name"] = p.patient_name;
        d["patient_id"] = p.patient_id;
        d["patient_birth_date"] = p.patient_birth_date;
        d["patient_sex"] = p.patient_sex;
        d["other_patient_ids"] = p.other_patient_ids;
        d["accession_number"] = p.accession_number;
        d["institution_name"] = p.institution_name;
        d["referring_physician_name"] = p.referring_physician_name;
        d["study_id"] = p.study_id;
        return d;
      },
      py::arg("path"), "The patient-identifying attributes as a dict of UTF-8 strings (for a host that must show them).");
  m.def(
      "scan_directory",
      [](const Path& root, unsigned threads) {
        dicom::DirectoryIndex index;
        {
          py::gil_scoped_release release;
          index = dicom::scan_directory(root.string(), {}, threads);
        }
        py::list studies;
        for (const auto& st : index.studies) {
          py::list series;
          for (const auto& se : st.series) {
            py::list files;
            for (const auto& in : se.instances) files.append(in.path);
            series.append(py::dict(py::arg("series_instance_uid") = se.series_instance_uid,
                                   py::arg("modality") = se.modality,
                                   py::arg("series_description") = se.series_description, py::arg("files") = files));
          }
          studies.append(py::dict(py::arg("study_instance_uid") = st.study_instance_uid,
                                  py::arg("study_date") = st.study_date, py::arg("series") = series));
        }
        py::list skipped;
        for (const auto& sk : index.skipped) {
          skipped.append(py::dict(py::arg("path") = sk.path, py::arg("code") = medinfer::to_string(sk.code),
                                  py::arg("reason") = sk.reason));
        }
        return py::dict(py::arg("studies") = studies, py::arg("skipped") = skipped,
                        py::arg("files_seen") = index.files_seen);
      },
      py::arg("root"), py::arg("threads") = 0,
      "Indexes a directory tree: {'studies': [{'study_instance_uid', 'study_date', 'series': [{..., 'files'}]}], "
      "'skipped': [{'path', 'code', 'reason'}], 'files_seen'}.");
  m.def(
      "read_series",
      [](const std::vector<Path>& files, bool strict, unsigned threads) {
        dicom::SeriesOptions o;
        o.strict = strict;
        o.threads = threads;
        dicom::SeriesVolume v;
        {
          py::gil_scoped_release release;
          v = dicom::read_series(strings(files), o);
        }
        const auto& vol = v.volume;
        const std::vector<py::ssize_t> shape = {static_cast<py::ssize_t>(vol.depth()), static_cast<py::ssize_t>(vol.height()),
                                                static_cast<py::ssize_t>(vol.width())};
        py::list warnings;
        for (const auto& w : v.warnings) warnings.append(py::dict(py::arg("kind") = std::string(dicom::to_string(w.kind)), py::arg("message") = w.message));
        py::dict info(py::arg("spacing") = vol.spacing(), py::arg("origin") = vol.origin(),
                      py::arg("direction") = vol.direction(), py::arg("files") = v.files, py::arg("warnings") = warnings,
                      py::arg("header") = header_dict(v.header));
        const medinfer::PixelType type = vol.pixel_type();
        py::array a = owned_array<medinfer::Volume>(std::move(v.volume), [](medinfer::Volume& x) { return x.mutable_data(); },
                                                   type, shape);
        return py::make_tuple(a, info);
      },
      py::arg("files"), py::arg("strict") = false, py::arg("threads") = 0,
      "A series as (volume array shaped (slices, rows, columns), info dict with spacing (x, y, z), origin, "
      "direction, files in slice order, warnings, header).");
  m.def(
      "deidentify_file",
      [](const Path& input, const Path& output, const std::string& key) {
        dicom::DeidentifyOptions o;
        o.pseudonym_key = key;
        dicom::DeidentifyReport r;
        {
          py::gil_scoped_release release;
          r = dicom::deidentify_file(input.string(), output.string(), o);
        }
        return py::dict(py::arg("removed") = r.removed, py::arg("emptied") = r.emptied,
                        py::arg("replaced") = r.replaced, py::arg("uids_replaced") = r.uids_replaced,
                        py::arg("warnings") = r.warnings);
      },
      py::arg("input"), py::arg("output"), py::arg("pseudonym_key"),
      "Writes a de-identified copy (PS3.15 Annex E Basic Profile); returns what changed.");
  m.def("pseudonymize_uid", &dicom::pseudonymize_uid, py::arg("uid"), py::arg("key"),
        "A stable pseudonym of a UID under a key of 16+ bytes: '2.25.' and the decimal of HMAC-SHA256 (as "
        "de-identification and audit records write them).");
}
