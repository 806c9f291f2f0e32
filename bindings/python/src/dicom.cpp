// medinfer.dicom: the Python mirror of medinfer/dicom.hpp (series.hpp: series.cpp; deidentify.hpp:
// deidentify.cpp): same names, numpy arrays over the library's pixels, ImageHeader; paths as str or
// os.PathLike. The GIL is released while files are read and decoded.
#include <medinfer/medinfer.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include "common.hpp"

#include <cstring>
#include <optional>

namespace py = pybind11;
namespace dicom = medinfer::dicom;

namespace {

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
  return owned_array<medinfer::Image>(std::move(image), [](medinfer::Image& i) { return i.mutable_data(); }, dtype_of(type), shape);
}

}  // namespace

void bind_dicom(py::module_& top, py::module_& m) {
  m.doc() = "DICOM reading, series and de-identification (medinfer/dicom.hpp, series.hpp, deidentify.hpp).";
  py::class_<medinfer::dicom::ReadOptions>(m, "ReadOptions", "How DICOM pixels are read (dicom.hpp).")
      .def(py::init<>())
      .def_readwrite("apply_modality_lut", &medinfer::dicom::ReadOptions::apply_modality_lut, "rescale stored values to modality units (HU for CT)")
      .def_readwrite("frame", &medinfer::dicom::ReadOptions::frame, "the frame to read (0-based)")
      .def_readwrite("convert_color", &medinfer::dicom::ReadOptions::convert_color, "YBR and palette colour to RGB")
      .def_readwrite("invert_monochrome1", &medinfer::dicom::ReadOptions::invert_monochrome1, "invert MONOCHROME1 so higher is brighter");
  top.attr("ReadOptions") = m.attr("ReadOptions");  // PipelineOptions.read's type, also at the top
  py::class_<dicom::HeaderWarning>(m, "HeaderWarning", "A problem in a header that did not stop the read.")
      .def_readonly("kind", &dicom::HeaderWarning::kind, "a HeaderWarningKind: CHARACTER_SET, INVALID_VALUE, ...")
      .def_readonly("tag", &dicom::HeaderWarning::tag, "the element, '(gggg,eeee)'")
      .def_readonly("message", &dicom::HeaderWarning::message, "what was wrong and what was done, naming the file")
      .def("__repr__", [](const dicom::HeaderWarning& w) {
        return py::str("HeaderWarning(kind={!r}, tag={!r})").format(dicom::to_string(w.kind), w.tag).cast<std::string>();
      });
  using H = dicom::ImageHeader;
  py::class_<H>(m, "ImageHeader",
                "The header values a host needs beside the pixels (no patient name, ID, birth date or accession "
                "number: read_patient_identifiers). Text is UTF-8, decoded from the file's character set.")
      .def_readonly("sop_class_uid", &H::sop_class_uid, "SOP Class UID")
      .def_readonly("sop_instance_uid", &H::sop_instance_uid, "SOP Instance UID")
      .def_readonly("study_instance_uid", &H::study_instance_uid, "Study Instance UID (identifies a patient's study)")
      .def_readonly("series_instance_uid", &H::series_instance_uid, "Series Instance UID")
      .def_readonly("frame_of_reference_uid", &H::frame_of_reference_uid, "Frame of Reference UID")
      .def_readonly("transfer_syntax_uid", &H::transfer_syntax_uid, "Transfer Syntax UID")
      .def_readonly("transfer_syntax_name", &H::transfer_syntax_name, "e.g. 'JPEG-LS Lossless'")
      .def_readonly("modality", &H::modality, "Modality, e.g. 'CT'")
      .def_readonly("body_part_examined", &H::body_part_examined, "Body Part Examined")
      .def_readonly("manufacturer", &H::manufacturer, "Manufacturer")
      .def_readonly("manufacturer_model_name", &H::manufacturer_model_name, "Manufacturer's Model Name")
      .def_readonly("study_date", &H::study_date, "YYYYMMDD as in the file")
      .def_readonly("series_date", &H::series_date, "YYYYMMDD as in the file")
      .def_readonly("acquisition_date", &H::acquisition_date, "YYYYMMDD as in the file")
      .def_readonly("content_date", &H::content_date, "YYYYMMDD as in the file")
      .def_readonly("series_description", &H::series_description, "Series Description")
      .def_readonly("image_type", &H::image_type, "Image Type values, e.g. ['ORIGINAL', 'PRIMARY', 'AXIAL']")
      .def_readonly("has_pixel_data", &H::has_pixel_data, "False for a non-image object (an SR, ...)")
      .def_readonly("photometric_interpretation", &H::photometric_interpretation, "e.g. 'MONOCHROME2'")
      .def_readonly("rows", &H::rows, "Rows")
      .def_readonly("columns", &H::columns, "Columns")
      .def_readonly("frames", &H::frames, "Number of Frames (1 when absent)")
      .def_readonly("samples_per_pixel", &H::samples_per_pixel, "Samples per Pixel")
      .def_readonly("planar_configuration", &H::planar_configuration, "Planar Configuration")
      .def_readonly("bits_allocated", &H::bits_allocated, "Bits Allocated")
      .def_readonly("bits_stored", &H::bits_stored, "Bits Stored")
      .def_readonly("high_bit", &H::high_bit, "High Bit")
      .def_readonly("pixel_signed", &H::pixel_signed, "Pixel Representation is 1")
      .def_readonly("float_pixels", &H::float_pixels, "Float / Double Float Pixel Data")
      .def_readonly("instance_number", &H::instance_number, "Instance Number (0 when absent)")
      .def_readonly("rescale_slope", &H::rescale_slope, "Rescale Slope")
      .def_readonly("rescale_intercept", &H::rescale_intercept, "Rescale Intercept")
      .def_readonly("has_modality_lut_sequence", &H::has_modality_lut_sequence, "a Modality LUT Sequence replaces slope/intercept")
      .def_readonly("has_window", &H::has_window, "the file has a window (width > 0)")
      .def_readonly("window_center", &H::window_center, "the first Window Center (with has_window)")
      .def_readonly("window_width", &H::window_width, "the first Window Width (with has_window)")
      .def_readonly("voi_lut_function", &H::voi_lut_function, "'LINEAR', 'LINEAR_EXACT' or 'SIGMOID'")
      .def_readonly("has_voi_lut_sequence", &H::has_voi_lut_sequence, "a VOI LUT Sequence is present")
      .def_readonly("voi_lut", &H::voi_lut, "the first VOI LUT's entries")
      .def_readonly("voi_lut_first_mapped", &H::voi_lut_first_mapped, "the VOI LUT's first mapped value")
      .def_readonly("voi_lut_bits", &H::voi_lut_bits, "the VOI LUT's output bits")
      .def_readonly("has_pixel_padding", &H::has_pixel_padding, "Pixel Padding Value present")
      .def_readonly("pixel_padding_value", &H::pixel_padding_value, "in stored values")
      .def_readonly("has_pixel_spacing", &H::has_pixel_spacing, "Pixel Spacing present and valid")
      .def_readonly("pixel_spacing", &H::pixel_spacing, "DICOM order: row spacing, column spacing (mm)")
      .def_readonly("slice_thickness", &H::slice_thickness, "Slice Thickness (0 when absent)")
      .def_readonly("has_position", &H::has_position, "Image Position (Patient) present")
      .def_readonly("image_position", &H::image_position, "Image Position (Patient), mm")
      .def_readonly("has_orientation", &H::has_orientation, "Image Orientation (Patient) present")
      .def_readonly("image_orientation", &H::image_orientation, "Image Orientation (Patient): row, then column cosines")
      .def_readonly("warnings", &H::warnings, "HeaderWarnings: problems that did not stop the read")
      .def("to_dict", &header_dict, "The header as a dict (a Python convenience; optional values only when present).")
      .def("__repr__", [](const H& h) {
        return py::str("ImageHeader(modality={!r}, rows={}, columns={}, frames={}, sop_instance_uid={!r})")
            .format(h.modality, h.rows, h.columns, h.frames, h.sop_instance_uid)
            .cast<std::string>();
      });
  m.def(
      "read_instance",
      [](const Path& path, bool apply_modality_lut, std::uint32_t frame, bool convert_color,
         bool invert_monochrome1) {
        dicom::Instance inst;
        {
          py::gil_scoped_release release;
          inst = dicom::read_instance(path.string(), read_options(apply_modality_lut, frame, convert_color, invert_monochrome1));
        }
        py::object header = py::cast(std::move(inst.header));
        return py::make_tuple(image_array(std::move(inst.image)), header);
      },
      py::arg("path"), py::arg("apply_modality_lut") = true, py::arg("frame") = 0, py::arg("convert_color") = true,
      py::arg("invert_monochrome1") = false,
      "One frame as (array, header): (rows, columns) float32 modality values for grayscale, (rows, columns, 3) RGB "
      "for colour. Raises InvalidDicomError, UnsupportedError, ResourceLimitError, NotFoundError.");
  m.def(
      "read_image",
      [](const Path& path, std::optional<dicom::ReadOptions> options) {
        const dicom::ReadOptions o = options.value_or(dicom::ReadOptions{});
        py::gil_scoped_release release;
        return dicom::read_image(path.string(), o);
      },
      py::arg("path"), py::arg("options") = py::none(),
      "One frame as a medinfer.Image (modality values, geometry from the header); numpy.asarray(image) views it. "
      "Releases the GIL.");
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
            std::move(px.data), [](std::vector<std::uint8_t>& d) { return static_cast<void*>(d.data()); }, dtype_of(type), shape);
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
        return h;
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
}
