// DICOM series: index a directory tree, and assemble a series into a Volume.
#pragma once

#include <medinfer/dicom.hpp>
#include <medinfer/error.hpp>
#include <medinfer/export.hpp>
#include <medinfer/volume.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace medinfer::dicom {

/// One image file of a series, as the directory scan saw it.
struct InstanceEntry {
  std::string path;
  std::string sop_instance_uid;
  std::int32_t instance_number = 0;
  std::uint16_t rows = 0, columns = 0;
  std::uint32_t frames = 1;
  bool has_position = false;
  std::array<double, 3> position{0, 0, 0};
  bool has_orientation = false;
  std::array<double, 6> orientation{1, 0, 0, 0, 1, 0};
  std::vector<std::string> image_type;
  double slice_thickness = 0.0;  ///< SliceThickness in mm, 0 when absent
};

struct SeriesEntry {
  std::string series_instance_uid;
  std::string modality;
  std::string series_description;
  std::string body_part_examined;  ///< of the first instance (sorted by path)
  std::string frame_of_reference_uid;
  std::vector<InstanceEntry> instances;  ///< sorted by path
};

struct StudyEntry {
  std::string study_instance_uid;
  std::string study_date;
  std::vector<SeriesEntry> series;
};

/// A file the scan did not index, and why (not DICOM, a DICOMDIR, no pixel data, unreadable, ...).
struct SkippedFile {
  std::string path;
  ErrorCode code = ErrorCode::kInvalidDicom;
  std::string reason;
};

struct DirectoryIndex {
  std::vector<StudyEntry> studies;  ///< sorted by Study Instance UID
  std::vector<SkippedFile> skipped;
  std::size_t files_seen = 0;
};

/// How find_files searches directories: the library's one rule for "a directory's files".
struct FindOptions {
  /// true: a directory's whole tree; false: only the files directly in it.
  bool recursive = true;
  /// true: symbolic links to files and directories are followed (a directory reached twice, e.g. by a
  /// link loop, is searched once); false: links are skipped and listed.
  bool follow_symlinks = true;
  /// More files than this under the given paths: Error(kResourceLimit) naming the path being searched.
  std::size_t max_files = 10'000'000;
};

/// What find_files found.
struct FoundFiles {
  /// The files to read, in order: each given path as given when it is not a directory (a path that
  /// does not exist stays, so that its reader says so), each directory's DICOM files sorted by path.
  /// A file reached twice (two links to it) is listed once.
  std::vector<std::string> files;
  /// Files under the directories that were left out, and why: not DICOM (no 'DICM' marker at byte 128
  /// and no dataset at the start), a file named DICOMDIR (a media directory), a broken link, a link not followed, an unreadable folder. Never a
  /// failure: a file that looks like DICOM and fails to read is listed in `files` and fails there.
  std::vector<SkippedFile> skipped;
  /// The directories searched (the given ones, as given).
  std::vector<std::string> searched;
};

/// Whether the first bytes of a file look like DICOM: 'DICM' at byte 128 (or at 0, a file missing its
/// preamble), or a dataset starting with a low group number (0002 or 0008, either byte order): the
/// same test the reader applies before it says "not DICOM".
MEDINFER_API bool looks_like_dicom(const std::uint8_t* data, std::size_t size) noexcept;
/// looks_like_dicom on the file's first 132 bytes. Throws Error: kNotFound, kIo (cannot be opened).
MEDINFER_API bool looks_like_dicom(const std::string& path);

/// The DICOM files of `paths` (files and directories) by the rule of FindOptions. Throws Error
/// kResourceLimit (more than options.max_files files). Never fails for a path that does not exist or
/// a file that cannot be read: those stay in `files` for their reader to report.
MEDINFER_API FoundFiles find_files(const std::vector<std::string>& paths, const FindOptions& options = {});

/// Finds the files under `root` as find_files does (recursively, links followed) and indexes every
/// DICOM image file by study, series and instance. Non-DICOM files, DICOMDIR files, objects without pixel data and
/// unreadable files are listed in `skipped` with the reason; the scan itself only fails
/// (kNotFound/kIo) when `root` cannot be read. Headers are read on `threads` threads (0: all cores).
MEDINFER_API DirectoryIndex scan_directory(const std::string& root, const ReadOptions& options = {},
                                           unsigned threads = 0);

/// The same index for a list of files (directories among them searched by find_files with `find`). A path that does not exist is listed in `skipped` (kNotFound); the scan never fails.
MEDINFER_API DirectoryIndex scan_files(const std::vector<std::string>& paths, const ReadOptions& options = {},
                                       unsigned threads = 0, const FindOptions& find = {});

/// How read_series treats an imperfect series.
struct SeriesOptions {
  /// true: any problem below fails with kInvalidDicom naming it. false (tolerant): slices that
  /// cannot belong to the volume are left out and every problem is reported in `warnings`.
  bool strict = false;
  /// Relative tolerance on slice spacing before it counts as non-uniform (0.01 = 1 %).
  double spacing_tolerance = 0.01;
  /// A step larger than this many times the median spacing is a gap (missing slices).
  double gap_factor = 1.5;
  unsigned threads = 0;  ///< decoding threads (0: all cores)
  ReadOptions read;      ///< limits, modality LUT (default: on; the volume is float32)
  /// false: only the geometry is worked out (order, warnings, spacing checks); no pixel is decoded and
  /// the returned volume is empty. What a 2D model run per slice needs.
  bool decode = true;
};

/// What kind of problem was found while assembling a series.
enum class SeriesWarningKind {
  kUnreadable,         ///< "unreadable": a file that could not be read (left out)
  kLocalizer,          ///< "localizer": ImageType LOCALIZER (left out)
  kMixedSeries,        ///< "mixed_series": files from more than one series
  kMixedOrientation,   ///< "mixed_orientation": an orientation unlike the rest (left out)
  kMixedSize,          ///< "mixed_size": a size unlike the rest (left out)
  kMissingPosition,    ///< "missing_position": a slice without ImagePositionPatient (ordered by InstanceNumber)
  kDuplicatePosition,  ///< "duplicate_position": all but the lowest InstanceNumber left out
  kGap,                ///< "gap": slices missing
  kNonUniformSpacing,  ///< "non_uniform_spacing"
  kTiltedGantry,       ///< "tilted_gantry": positions not along the slice normal (`direction` is the true one)
};
/// The kind's name, as above ("gap", "tilted_gantry", ...).
MEDINFER_API const char* to_string(SeriesWarningKind kind) noexcept;

/// A problem found while assembling a series.
struct SeriesWarning {
  SeriesWarningKind kind = SeriesWarningKind::kGap;
  std::string message;
};

struct SeriesVolume {
  Volume volume;
  std::vector<std::string> files;  ///< the file of each slice, in volume order
  std::vector<std::uint32_t> frames;  ///< the frame of each slice in its file (0 for single-frame files)
  std::vector<std::string> sop_instance_uids;  ///< the SOP Instance UID of each slice's file
  std::vector<SeriesWarning> warnings;
  ImageHeader header;              ///< of the first slice
};

/// Reads the image files of one series (or one multi-frame file) into a Volume sorted by position
/// along the slice normal (not by InstanceNumber), with the z spacing from all positions. Files
/// are decoded on `options.threads` threads. Throws Error: what read_instance throws for a file, and
/// kInvalidDicom for an empty list, a series with fewer than two usable slices when positions are
/// needed, or (strict) any problem listed under SeriesWarning.
MEDINFER_API SeriesVolume read_series(const std::vector<std::string>& files, const SeriesOptions& options = {});

/// read_series on the instances of a scanned series.
MEDINFER_API SeriesVolume read_series(const SeriesEntry& series, const SeriesOptions& options = {});

}  // namespace medinfer::dicom
