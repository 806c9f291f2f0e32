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

/// Walks `root` recursively (symbolic links are not followed) and indexes every DICOM image file by
/// study, series and instance. Non-DICOM files, DICOMDIR files, objects without pixel data and
/// unreadable files are listed in `skipped` with the reason; the scan itself only fails
/// (kNotFound/kIo) when `root` cannot be read. Headers are read on `threads` threads (0: all cores).
MEDINFER_API DirectoryIndex scan_directory(const std::string& root, const ReadOptions& options = {},
                                           unsigned threads = 0);

/// The same index for a list of files (directories among them are walked as scan_directory walks
/// them). A path that does not exist is listed in `skipped` (kNotFound); the scan never fails.
MEDINFER_API DirectoryIndex scan_files(const std::vector<std::string>& paths, const ReadOptions& options = {},
                                       unsigned threads = 0);

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
