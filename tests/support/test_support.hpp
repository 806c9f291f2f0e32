// Helpers for the C++ tests: paths, temporary directories, and DICOM files written with DCMTK.
#pragma once

#include <medinfer/audit.hpp>
#include <medinfer/error.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace medinfer::test {

namespace fs = std::filesystem;

fs::path source_dir();
fs::path demo_model_dir();
/// Written by the 'sample_study' CTest fixture (scripts/make_sample_study.py), or by the first call when
/// the tests run without CTest ($MEDINFER_SAMPLE_STUDY_DIR overrides the place).
fs::path sample_study_dir();

/// A fresh directory under the system temp dir, removed when the object goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

enum class Syntax { kExplicitLittle, kImplicitLittle, kExplicitBig, kJpegLossless };

/// What write_dicom() writes: a single-frame grayscale CT image unless told otherwise.
struct DicomSpec {
  std::uint16_t rows = 8, columns = 8;
  std::uint16_t bits_allocated = 16, bits_stored = 16;
  bool pixel_signed = true;
  /// Stored values, row-major, rows*columns of them (cast to the stored type); empty -> a ramp.
  std::vector<std::int32_t> values;
  bool write_rescale = true;
  std::string slope = "1", intercept = "-1024";
  Syntax syntax = Syntax::kExplicitLittle;
  bool pixel_data = true;
  std::uint16_t samples_per_pixel = 1;
  std::string photometric = "MONOCHROME2";
  std::string number_of_frames;  ///< written when non-empty
  bool part10 = true;                ///< false: the bare dataset (no preamble, no File Meta)
  std::uint32_t frames_of_data = 1;  ///< frames of pixel values written (values: this many frames)
  std::string pixel_spacing = "0.5\\0.75";
  std::string position = "-100\\-50\\20";
  std::string orientation = "1\\0\\0\\0\\1\\0";
  std::string modality = "CT";
  std::uint16_t planar_configuration = 0;  ///< values stay interleaved; the writer reorders them
  std::int32_t instance_number = 0;        ///< written when non-zero
  std::string image_type;                  ///< written when non-empty, e.g. "ORIGINAL\\PRIMARY\\LOCALIZER"
  std::string slice_thickness;             ///< written when non-empty
  std::string frame_of_reference_uid;      ///< written when non-empty
  std::string body_part;            ///< written when non-empty
  std::string patient_name = "DOE^JANE";
  std::string patient_id = "PID-123456";
  std::string patient_birth_date;   ///< written when non-empty
  std::string accession_number;     ///< written when non-empty
  std::string study_uid, series_uid, sop_uid;  ///< generated when empty
};

/// Writes a Part-10 file; throws std::runtime_error if DCMTK fails.
void write_dicom(const fs::path& path, const DicomSpec& spec);
/// The spec's pixel values (a ramp when `values` is empty), interleaved, all frames.
std::vector<std::int32_t> pixel_values(const DicomSpec& spec);
/// The spec's native little-endian Pixel Data bytes (1-bit packed, planar when asked, even length).
std::string native_pixel_bytes(const DicomSpec& spec);
/// Writes the spec's header with encapsulated Pixel Data: an empty offset table, then one fragment
/// per entry of `frames`, under `transfer_syntax_uid` (one DCMTK knows).
void write_encapsulated(const fs::path& path, const DicomSpec& spec, const std::string& transfer_syntax_uid,
                        const std::vector<std::string>& frames);
/// Replaces the File Meta transfer syntax UID `from` by `to` (padded to the same even length), for
/// syntaxes DCMTK 3.6.7 does not know.
void patch_transfer_syntax(const fs::path& path, const std::string& from, const std::string& to);
/// std::system(command), output discarded; the exit status.
int run_command(const std::string& command);

std::string read_text(const fs::path& path);
void write_text(const fs::path& path, const std::string& text);
/// Copies the demo package into `dir` (a fresh copy the test may modify).
fs::path copy_demo_package(const fs::path& dir);
/// SHA-256 hex of a file's bytes (via the sha256sum tool: independent of the library's own code).
std::string sha256_file(const fs::path& path);

/// Runs f, which must throw medinfer::Error; returns its code (and message). Anything else, or no
/// exception at all, throws std::runtime_error, which fails the calling test.
ErrorCode error_code_of(const std::function<void()>& f, std::string* message = nullptr);

/// An audit sink that keeps every record (thread-safe), for tests that look at what was audited.
class Recorder {
 public:
  std::shared_ptr<audit::Sink> sink() {
    return audit::CallbackSink::create([this](const audit::Record& r) {
      std::lock_guard<std::mutex> lock(mutex_);
      records_.push_back(r);
    });
  }
  std::vector<audit::Record> records() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return records_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<audit::Record> records_;
};

}  // namespace medinfer::test
