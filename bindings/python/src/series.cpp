// medinfer/series.hpp in medinfer.dicom: find_files (the one rule for a folder's files), scan_directory (an index of studies, series and files; what
// could not be indexed), read_series (a volume in slice order with its geometry), SeriesWarning and
// SkippedFile. The GIL is released while files are read.
#include "common.hpp"

#include <medinfer/series.hpp>

#include <optional>

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

namespace dicom = medinfer::dicom;

void bind_series(py::module_& m) {
  py::class_<medinfer::dicom::SeriesWarning>(m, "SeriesWarning", "A geometry or slice problem of a series.")
      .def_readonly("kind", &medinfer::dicom::SeriesWarning::kind, "a SeriesWarningKind: GAP, LOCALIZER, ...")
      .def_readonly("message", &medinfer::dicom::SeriesWarning::message, "what was found, naming the files");
  py::class_<medinfer::dicom::SkippedFile>(m, "SkippedFile", "A file a directory scan could not index.")
      .def_readonly("path", &medinfer::dicom::SkippedFile::path, "the file")
      .def_readonly("code", &medinfer::dicom::SkippedFile::code, "the ErrorCode")
      .def_readonly("reason", &medinfer::dicom::SkippedFile::reason, "why");
  py::class_<dicom::FindOptions>(m, "FindOptions", "How find_files (and Inputs) search folders: the library's one rule.")
      .def(py::init<>())
      .def_readwrite("recursive", &dicom::FindOptions::recursive, "a folder's whole tree (True) or its own files")
      .def_readwrite("follow_symlinks", &dicom::FindOptions::follow_symlinks,
                     "follow symbolic links (a folder reached twice is searched once)")
      .def_readwrite("max_files", &dicom::FindOptions::max_files, "more files than this: ResourceLimitError");
  py::class_<dicom::FoundFiles>(m, "FoundFiles", "What find_files found: files, skipped files, folders searched.")
      .def_readonly("files", &dicom::FoundFiles::files, "the files to read, in order")
      .def_readonly("skipped", &dicom::FoundFiles::skipped, "SkippedFile for each file left out (not DICOM, ...)")
      .def_readonly("searched", &dicom::FoundFiles::searched, "the folders searched");
  m.def(
      "find_files",
      [](const std::vector<Path>& paths, const std::optional<dicom::FindOptions>& options) {
        const std::vector<std::string> given = strings(paths);
        py::gil_scoped_release release;
        return dicom::find_files(given, options.value_or(dicom::FindOptions{}));
      },
      py::arg("paths"), py::arg("options") = py::none(),
      "The DICOM files of paths (files kept as given; folders searched recursively, links followed, files that "
      "are not DICOM skipped and listed).");
  m.def(
      "looks_like_dicom", [](const Path& path) { return dicom::looks_like_dicom(path.string()); }, py::arg("path"),
      "Whether the file starts as DICOM does ('DICM' at byte 128, or a dataset at the start).");
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
                      py::arg("header") = py::cast(v.header));
        const medinfer::PixelType type = vol.pixel_type();
        py::array a = owned_array<medinfer::Volume>(std::move(v.volume), [](medinfer::Volume& x) { return x.mutable_data(); },
                                                   dtype_of(type), shape);
        return py::make_tuple(a, info);
      },
      py::arg("files"), py::arg("strict") = false, py::arg("threads") = 0,
      "A series as (volume array shaped (slices, rows, columns), info dict with spacing (x, y, z), origin, "
      "direction, files in slice order, warnings, header).");
}
