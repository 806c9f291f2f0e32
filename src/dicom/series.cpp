// Directory scanning and series-to-volume assembly.
#include <medinfer/error.hpp>
#include <medinfer/series.hpp>

#include "core/parallel.hpp"
#include "dicom/dicom_file.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>

namespace medinfer::dicom {

const char* to_string(SeriesWarningKind kind) noexcept {
  switch (kind) {
    case SeriesWarningKind::kUnreadable: return "unreadable";
    case SeriesWarningKind::kLocalizer: return "localizer";
    case SeriesWarningKind::kMixedSeries: return "mixed_series";
    case SeriesWarningKind::kMixedOrientation: return "mixed_orientation";
    case SeriesWarningKind::kMixedSize: return "mixed_size";
    case SeriesWarningKind::kMissingPosition: return "missing_position";
    case SeriesWarningKind::kDuplicatePosition: return "duplicate_position";
    case SeriesWarningKind::kGap: return "gap";
    case SeriesWarningKind::kNonUniformSpacing: return "non_uniform_spacing";
    case SeriesWarningKind::kTiltedGantry: return "tilted_gantry";
  }
  return "unknown";
}

namespace {

namespace fs = std::filesystem;
using detail::DicomFile;

using Vec3 = std::array<double, 3>;
Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
Vec3 sub(const Vec3& a, const Vec3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
double norm(const Vec3& a) { return std::sqrt(dot(a, a)); }

bool is_localizer(const std::vector<std::string>& image_type) {
  return std::find(image_type.begin(), image_type.end(), "LOCALIZER") != image_type.end();
}

// One slice of the volume to be: a frame of a file.
struct Slice {
  std::size_t file = 0;
  std::uint32_t frame = 0;
  std::int32_t instance_number = 0;
  std::optional<Vec3> position;
  std::array<double, 6> orientation{1, 0, 0, 0, 1, 0};
  std::uint16_t rows = 0, columns = 0;
  double slope = 1.0, intercept = 0.0;
  double along = 0.0;  // position projected on the slice normal
};

// What read_series keeps of each file between reading headers and decoding.
struct FileInfo {
  ImageHeader header;
  detail::PixelFormat format;
  std::optional<detail::Lut> modality_lut;
  std::vector<std::optional<Vec3>> positions;      // per frame
  std::vector<std::pair<double, double>> rescale;  // per frame
};

class Problems {
 public:
  explicit Problems(bool strict) : strict_(strict) {}
  void add(SeriesWarningKind kind, const std::string& message) {
    if (strict_) throw Error(ErrorCode::kInvalidDicom, fmt::format("series is not a clean volume ({}): {}", to_string(kind), message));
    warnings.push_back({kind, message});
  }
  std::vector<SeriesWarning> warnings;

 private:
  bool strict_;
};

// Keeps the slices whose key equals the most common key; the others are reported and dropped.
template <typename Key, typename Describe>
void keep_majority(std::vector<Slice>& slices, Key key, Problems& problems, SeriesWarningKind kind,
                   const std::vector<std::string>& files, Describe describe) {
  std::vector<std::pair<decltype(key(slices[0])), std::size_t>> counts;
  for (const Slice& s : slices) {
    auto k = key(s);
    auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == k; });
    if (it == counts.end()) {
      counts.push_back({k, 1});
    } else {
      ++it->second;
    }
  }
  if (counts.size() <= 1) return;
  const auto majority = std::max_element(counts.begin(), counts.end(),
                                         [](const auto& a, const auto& b) { return a.second < b.second; })->first;
  std::vector<Slice> kept;
  for (const Slice& s : slices) {
    if (key(s) == majority) {
      kept.push_back(s);
    } else {
      problems.add(kind, fmt::format("{} (frame {}) {}: left out", files[s.file], s.frame, describe(s)));
    }
  }
  slices = std::move(kept);
}

}  // namespace

namespace {

DirectoryIndex index_files(std::vector<std::string> paths, std::vector<SkippedFile> skipped, const ReadOptions& options,
                           unsigned threads);

}  // namespace

DirectoryIndex scan_directory(const std::string& root, const ReadOptions& options, unsigned threads) {
  std::error_code ec;
  const fs::file_status st = fs::status(root, ec);
  if (ec || !fs::exists(st)) throw Error(ErrorCode::kNotFound, root + ": no such directory");
  if (!fs::is_directory(st)) throw Error(ErrorCode::kIo, root + ": not a directory");
  return scan_files({root}, options, threads);
}

DirectoryIndex scan_files(const std::vector<std::string>& inputs, const ReadOptions& options, unsigned threads,
                          const FindOptions& find) {
  FoundFiles found = find_files(inputs, find);
  std::sort(found.files.begin(), found.files.end());
  found.files.erase(std::unique(found.files.begin(), found.files.end()), found.files.end());
  return index_files(std::move(found.files), std::move(found.skipped), options, threads);
}

namespace {

DirectoryIndex index_files(std::vector<std::string> paths, std::vector<SkippedFile> skipped, const ReadOptions& options,
                           unsigned threads) {
  std::sort(paths.begin(), paths.end());

  struct Scanned {
    std::optional<ImageHeader> header;
    SkippedFile skipped;
  };
  std::vector<Scanned> scanned(paths.size());
  medinfer::detail::parallel_for(paths.size(), threads, [&](std::size_t i) {
    Scanned& out = scanned[i];
    out.skipped.path = paths[i];
    if (fs::path(paths[i]).filename() == "DICOMDIR") {
      out.skipped.reason = "a DICOMDIR (media directory), not an image";
      return;
    }
    try {
      auto file = DicomFile::open_header(paths[i], options);
      if (file->is_dicomdir()) {
        out.skipped.reason = "a DICOMDIR (media directory), not an image";
      } else if (!file->has_pixels()) {
        out.skipped.reason = fmt::format("no Pixel Data (SOP class {}): not an image", file->header().sop_class_uid);
      } else {
        out.header = file->header();
      }
    } catch (const Error& e) {
      out.skipped.code = e.code();
      out.skipped.reason = e.what();
    }
  });

  DirectoryIndex index;
  index.files_seen = paths.size() + skipped.size();
  index.skipped = std::move(skipped);
  std::map<std::string, StudyEntry> studies;
  std::map<std::pair<std::string, std::string>, SeriesEntry> series;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    if (!scanned[i].header) {
      index.skipped.push_back(scanned[i].skipped);
      continue;
    }
    const ImageHeader& h = *scanned[i].header;
    StudyEntry& study = studies[h.study_instance_uid];
    study.study_instance_uid = h.study_instance_uid;
    study.study_date = h.study_date;
    SeriesEntry& s = series[{h.study_instance_uid, h.series_instance_uid}];
    s.series_instance_uid = h.series_instance_uid;
    s.modality = h.modality;
    s.series_description = h.series_description;
    if (s.instances.empty()) s.body_part_examined = h.body_part_examined;
    s.frame_of_reference_uid = h.frame_of_reference_uid;
    InstanceEntry e;
    e.path = paths[i];
    e.sop_instance_uid = h.sop_instance_uid;
    e.instance_number = h.instance_number;
    e.rows = h.rows;
    e.columns = h.columns;
    e.frames = h.frames;
    e.has_position = h.has_position;
    e.position = h.image_position;
    e.has_orientation = h.has_orientation;
    e.orientation = h.image_orientation;
    e.image_type = h.image_type;
    e.slice_thickness = h.slice_thickness;
    s.instances.push_back(std::move(e));
  }
  for (auto& [key, s] : series) studies[key.first].series.push_back(std::move(s));
  for (auto& [uid, study] : studies) index.studies.push_back(std::move(study));
  return index;
}

}  // namespace

SeriesVolume read_series(const SeriesEntry& series, const SeriesOptions& options) {
  std::vector<std::string> files;
  for (const InstanceEntry& e : series.instances) files.push_back(e.path);
  return read_series(files, options);
}

SeriesVolume read_series(const std::vector<std::string>& files, const SeriesOptions& options) {
  if (files.empty()) throw Error(ErrorCode::kInvalidArgument, "read_series: no files");
  Problems problems(options.strict);

  // 1. Headers, in parallel; an unreadable file is a problem like any other. Only what sorting and
  //    conversion need is kept: files are read again, one at a time per thread, to decode (keeping
  //    every file's bytes in memory at once costs more in page faults than reading twice).
  std::vector<std::optional<FileInfo>> opened(files.size());
  std::vector<std::optional<Error>> failures(files.size());
  medinfer::detail::parallel_for(files.size(), options.threads, [&](std::size_t i) {
    try {
      auto f = DicomFile::open_header(files[i], options.read);
      f->require_pixels(0);
      FileInfo info;
      info.header = f->header();
      info.format = f->format();
      info.modality_lut = f->modality_lut();
      for (std::uint32_t k = 0; k < info.header.frames; ++k) {
        info.positions.push_back(f->frame_position(k));
        info.rescale.push_back(f->frame_rescale(k));
      }
      opened[i] = std::move(info);
    } catch (const Error& e) {
      failures[i] = e;
    }
  });
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (!failures[i]) continue;
    if (options.strict) throw *failures[i];
    problems.add(SeriesWarningKind::kUnreadable, fmt::format("{}: left out", failures[i]->what()));
  }

  // 2. Slices (every frame of every file), with what sorting and conversion need.
  std::vector<Slice> slices;
  std::map<std::string, std::size_t> series_count;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (!opened[i]) continue;
    const FileInfo& f = *opened[i];
    const ImageHeader& h = f.header;
    if (f.format.samples != 1) {
      throw Error(ErrorCode::kUnsupported,
                  fmt::format("{}: a volume is built from grayscale images; this one is {}", files[i],
                              h.photometric_interpretation));
    }
    ++series_count[h.series_instance_uid];
    if (is_localizer(h.image_type)) {
      problems.add(SeriesWarningKind::kLocalizer, fmt::format("{} is a localizer (ImageType LOCALIZER): left out", files[i]));
      continue;
    }
    for (std::uint32_t k = 0; k < h.frames; ++k) {
      Slice s;
      s.file = i;
      s.frame = k;
      s.instance_number = h.instance_number;
      s.position = f.positions[k];
      s.orientation = h.image_orientation;
      s.rows = h.rows;
      s.columns = h.columns;
      std::tie(s.slope, s.intercept) = f.rescale[k];
      slices.push_back(s);
    }
  }
  if (series_count.size() > 1) {
    problems.add(SeriesWarningKind::kMixedSeries, fmt::format("the files belong to {} different series", series_count.size()));
    const std::string majority = std::max_element(series_count.begin(), series_count.end(), [](auto& a, auto& b) {
                                   return a.second < b.second;
                                 })->first;
    slices.erase(std::remove_if(slices.begin(), slices.end(),
                                [&](const Slice& s) { return opened[s.file]->header.series_instance_uid != majority; }),
                 slices.end());
  }
  if (slices.empty()) throw Error(ErrorCode::kInvalidDicom, "read_series: no usable image slices among the files");

  // 3. One orientation and one size: the rest are localizers or strays.
  keep_majority(slices, [](const Slice& s) {
    std::array<long, 6> k{};
    for (int i = 0; i < 6; ++i) k[i] = std::lround(s.orientation[i] * 1000);
    return k;
  }, problems, SeriesWarningKind::kMixedOrientation, files, [](const Slice& s) {
    return fmt::format("has orientation {:.3f}", fmt::join(s.orientation, "\\"));
  });
  keep_majority(slices, [](const Slice& s) { return std::make_pair(s.rows, s.columns); }, problems, SeriesWarningKind::kMixedSize, files,
                [](const Slice& s) { return fmt::format("is {} x {}", s.rows, s.columns); });

  // 4. Sort along the slice normal.
  const auto& o = slices.front().orientation;
  const Vec3 row{o[0], o[1], o[2]}, col{o[3], o[4], o[5]};
  Vec3 normal = cross(row, col);
  const double nn = norm(normal);
  if (!(nn > 0.5)) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: ImageOrientationPatient is degenerate", files[slices[0].file]));
  }
  for (double& v : normal) v /= nn;
  const bool all_positioned = std::all_of(slices.begin(), slices.end(), [](const Slice& s) { return s.position.has_value(); });
  double z_spacing = 1.0;
  Vec3 slice_direction = normal;
  if (slices.size() > 1 && !all_positioned) {
    problems.add(SeriesWarningKind::kMissingPosition, "some slices have no ImagePositionPatient: ordered by InstanceNumber");
    std::stable_sort(slices.begin(), slices.end(),
                     [](const Slice& a, const Slice& b) { return a.instance_number < b.instance_number; });
    const double thickness = opened[slices[0].file]->header.slice_thickness;
    if (thickness > 0) z_spacing = thickness;
  } else if (slices.size() > 1) {
    for (Slice& s : slices) s.along = dot(*s.position, normal);
    std::stable_sort(slices.begin(), slices.end(), [](const Slice& a, const Slice& b) {
      return a.along != b.along ? a.along < b.along : a.instance_number < b.instance_number;
    });
    // Duplicates: the same position twice.
    std::vector<Slice> unique;
    for (const Slice& s : slices) {
      if (!unique.empty() && std::abs(s.along - unique.back().along) < 1e-3) {
        const bool replace = s.instance_number < unique.back().instance_number;
        const Slice& dropped = replace ? unique.back() : s;
        problems.add(SeriesWarningKind::kDuplicatePosition,
                     fmt::format("{} (frame {}) repeats the position {:.3f} mm along the normal: left out",
                                 files[dropped.file], dropped.frame, s.along));
        if (replace) unique.back() = s;
        continue;
      }
      unique.push_back(s);
    }
    slices = std::move(unique);
    if (slices.size() > 1) {
      std::vector<double> steps;
      for (std::size_t k = 1; k < slices.size(); ++k) steps.push_back(slices[k].along - slices[k - 1].along);
      std::vector<double> sorted = steps;
      std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2), sorted.end());
      const double median = sorted[sorted.size() / 2];
      double worst = 0.0;
      for (std::size_t k = 0; k < steps.size(); ++k) {
        if (steps[k] > options.gap_factor * median) {
          problems.add(SeriesWarningKind::kGap, fmt::format("{:.3f} mm between {} and {} where the spacing is {:.3f} mm: slices missing",
                                          steps[k], files[slices[k].file], files[slices[k + 1].file], median));
        } else {
          worst = std::max(worst, std::abs(steps[k] - median) / median);
        }
      }
      if (worst > options.spacing_tolerance) {
        problems.add(SeriesWarningKind::kNonUniformSpacing,
                     fmt::format("slice spacing varies by {:.1f} % around {:.3f} mm", worst * 100.0, median));
      }
      // Tilt: the line through the positions leaves the normal (a gantry tilt shears the volume).
      const Vec3 span = sub(*slices.back().position, *slices.front().position);
      const double length = norm(span);
      const double cosine = dot(span, normal) / length;
      if (cosine < 1.0 - 1e-4) {
        problems.add(SeriesWarningKind::kTiltedGantry,
                     fmt::format("slice positions run {:.2f} degrees off the slice normal (gantry tilt): the volume's "
                                 "slice direction follows the positions",
                                 std::acos(std::min(1.0, cosine)) * 180.0 / M_PI));
        for (int i = 0; i < 3; ++i) slice_direction[i] = span[i] / length;
      }
      z_spacing = median / dot(slice_direction, normal);
    }
  }

  SeriesVolume out;
  for (const Slice& s : slices) {
    out.files.push_back(files[s.file]);
    out.frames.push_back(s.frame);
    out.sop_instance_uids.push_back(opened[s.file]->header.sop_instance_uid);
  }
  out.header = opened[slices[0].file]->header;
  out.warnings = std::move(problems.warnings);
  if (!options.decode) return out;  // the geometry only

  // 5. Decode every slice straight into the volume, on all cores.
  const detail::PixelFormat& f0 = opened[slices[0].file]->format;
  const bool to_float = options.read.apply_modality_lut;
  const PixelType type = to_float ? PixelType::kFloat32 : f0.stored_type();
  for (const Slice& s : slices) {
    if (!to_float && opened[s.file]->format.stored_type() != type) {
      throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: stored type differs from the first slice's; read with the "
                                                        "modality LUT to get one float volume",
                                                        files[s.file]));
    }
  }
  const std::uint64_t bytes = std::uint64_t{slices.size()} * f0.rows * f0.columns * bytes_per_sample(type);
  if (bytes > options.read.max_pixel_bytes) {
    throw Error(ErrorCode::kResourceLimit, fmt::format("read_series: {} slices of {} x {} need {} bytes, above the limit "
                                                       "{} (ReadOptions::max_pixel_bytes)",
                                                       slices.size(), f0.rows, f0.columns, bytes,
                                                       options.read.max_pixel_bytes));
  }
  out.volume = Volume(type, f0.columns, f0.rows, slices.size());
  auto* base = static_cast<std::uint8_t*>(out.volume.mutable_data());
  const std::size_t slice_bytes = out.volume.slice_bytes();
  // The slices of each file (a multi-frame file holds several), so each file is read once.
  std::map<std::size_t, std::vector<std::size_t>> by_file;
  for (std::size_t k = 0; k < slices.size(); ++k) by_file[slices[k].file].push_back(k);
  std::vector<std::pair<std::size_t, std::vector<std::size_t>>> work(by_file.begin(), by_file.end());
  medinfer::detail::parallel_for(work.size(), options.threads, [&](std::size_t w) {
    const auto& [file_index, zs] = work[w];
    const auto file = DicomFile::open_path(files[file_index], options.read);
    const FileInfo& info = *opened[file_index];
    if (file->format().rows != info.format.rows || file->format().columns != info.format.columns) {
      throw Error(ErrorCode::kIo, files[file_index] + ": changed while the series was read");
    }
    const bool invert = options.read.invert_monochrome1 && info.format.photometric == "MONOCHROME1";
    thread_local std::vector<std::uint8_t> cells;  // reused: no fresh pages per slice
    for (const std::size_t k : zs) {
      const Slice& s = slices[k];
      if (!to_float) {
        file->decode_frame(s.frame, base + k * slice_bytes);
        continue;
      }
      if (cells.size() < info.format.frame_out_bytes()) cells.resize(info.format.frame_out_bytes());
      file->decode_frame(s.frame, cells.data());
      detail::stored_to_modality(info.format, cells.data(), reinterpret_cast<float*>(base + k * slice_bytes), s.slope,
                                 s.intercept, info.modality_lut ? &*info.modality_lut : nullptr, invert);
    }
  });

  const ImageHeader& h0 = out.header;
  out.volume.set_spacing({h0.pixel_spacing[1], h0.pixel_spacing[0], z_spacing > 0 ? z_spacing : 1.0});
  if (slices[0].position) out.volume.set_origin(*slices[0].position);
  out.volume.set_direction({row[0], row[1], row[2], col[0], col[1], col[2], slice_direction[0], slice_direction[1],
                            slice_direction[2]});
  return out;
}

}  // namespace medinfer::dicom
