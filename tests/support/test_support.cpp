#include "test_support.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>

#include <unistd.h>

namespace medinfer::test {

fs::path source_dir() { return fs::path(MEDINFER_TEST_SOURCE_DIR); }
fs::path demo_model_dir() { return source_dir() / "models" / "demo"; }
fs::path sample_study_dir() {
  // The 'sample_study' CTest fixture writes it; run directly, the tests write it themselves (once per
  // process, into a scratch directory renamed into place, so a reader never sees half a study).
  // MEDINFER_SAMPLE_STUDY_DIR points the tests at another copy.
  const char* override_dir = std::getenv("MEDINFER_SAMPLE_STUDY_DIR");
  const fs::path dir = override_dir ? fs::path(override_dir) : fs::path(MEDINFER_TEST_BINARY_DIR) / "sample-study";
  static std::once_flag once;
  std::call_once(once, [&] {
    if (fs::exists(dir / "labels.csv")) return;  // labels.csv is written last
    const fs::path scratch = dir.string() + ".partial-" + std::to_string(::getpid());
    const std::string command = std::string(MEDINFER_TEST_PYTHON) + " " +
                                (source_dir() / "scripts" / "make_sample_study.py").string() + " --out " +
                                scratch.string() + " >/dev/null";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("cannot write the sample study: " + command);
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::rename(scratch, dir);
  });
  return dir;
}

TempDir::TempDir() {
  static std::mt19937_64 rng(std::random_device{}());
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  for (;;) {
    path_ = fs::temp_directory_path() / ("medinfer-test-" + std::to_string(rng()));
    if (fs::create_directory(path_)) return;
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

void check(const OFCondition& c, const char* what) {
  if (c.bad()) throw std::runtime_error(std::string("test DICOM writer: ") + what + ": " + c.text());
}

}  // namespace

std::vector<std::int32_t> pixel_values(const DicomSpec& s) {
  const std::size_t n = std::size_t{s.rows} * s.columns * s.samples_per_pixel * s.frames_of_data;
  std::vector<std::int32_t> values = s.values;
  if (values.empty()) {
    for (std::size_t i = 0; i < n; ++i) values.push_back(static_cast<std::int32_t>(i % 200));
  }
  if (values.size() != n) throw std::runtime_error("test DICOM writer: wrong number of values");
  return values;
}

std::string native_pixel_bytes(const DicomSpec& s) {
  const std::vector<std::int32_t> values = pixel_values(s);
  const std::size_t pixels = std::size_t{s.rows} * s.columns;
  const std::size_t spp = s.samples_per_pixel;
  // Planar configuration 1: each frame holds its sample planes one after another.
  std::vector<std::int32_t> ordered(values.size());
  for (std::size_t f = 0; f < s.frames_of_data; ++f) {
    for (std::size_t p = 0; p < pixels; ++p) {
      for (std::size_t c = 0; c < spp; ++c) {
        const std::size_t from = (f * pixels + p) * spp + c;
        const std::size_t to = s.planar_configuration == 1 ? f * pixels * spp + c * pixels + p : from;
        ordered[to] = values[from];
      }
    }
  }
  std::string out;
  if (s.bits_allocated == 1) {
    out.assign((ordered.size() + 7) / 8, '\0');
    for (std::size_t i = 0; i < ordered.size(); ++i) {
      if (ordered[i] & 1) out[i / 8] = static_cast<char>(out[i / 8] | (1 << (i % 8)));
    }
  } else {
    const std::size_t b = s.bits_allocated / 8;
    for (std::int32_t v : ordered) {
      for (std::size_t k = 0; k < b; ++k) out.push_back(static_cast<char>((static_cast<std::uint32_t>(v) >> (8 * k)) & 0xFF));
    }
  }
  if (out.size() % 2 == 1) out.push_back('\0');
  return out;
}

namespace {

void write_header(DcmDataset* ds, const DicomSpec& s) {
  char uid[100];
  check(ds->putAndInsertString(DCM_SOPClassUID, UID_CTImageStorage), "SOPClassUID");
  auto uid_or = [&](const std::string& given, const char* root) {
    return given.empty() ? std::string(dcmGenerateUniqueIdentifier(uid, root)) : given;
  };
  check(ds->putAndInsertString(DCM_SOPInstanceUID, uid_or(s.sop_uid, SITE_INSTANCE_UID_ROOT).c_str()), "uid");
  check(ds->putAndInsertString(DCM_StudyInstanceUID, uid_or(s.study_uid, SITE_STUDY_UID_ROOT).c_str()), "uid");
  check(ds->putAndInsertString(DCM_SeriesInstanceUID, uid_or(s.series_uid, SITE_SERIES_UID_ROOT).c_str()), "uid");
  if (!s.patient_birth_date.empty()) check(ds->putAndInsertString(DCM_PatientBirthDate, s.patient_birth_date.c_str()), "BirthDate");
  if (!s.accession_number.empty()) check(ds->putAndInsertString(DCM_AccessionNumber, s.accession_number.c_str()), "Accession");
  check(ds->putAndInsertString(DCM_Modality, s.modality.c_str()), "Modality");
  if (!s.body_part.empty()) check(ds->putAndInsertString(DCM_BodyPartExamined, s.body_part.c_str()), "BodyPart");
  check(ds->putAndInsertString(DCM_PatientName, s.patient_name.c_str()), "PatientName");
  check(ds->putAndInsertString(DCM_PatientID, s.patient_id.c_str()), "PatientID");
  if (s.instance_number != 0) {
    check(ds->putAndInsertString(DCM_InstanceNumber, std::to_string(s.instance_number).c_str()), "InstanceNumber");
  }
  if (!s.image_type.empty()) check(ds->putAndInsertString(DCM_ImageType, s.image_type.c_str()), "ImageType");
  check(ds->putAndInsertUint16(DCM_Rows, s.rows), "Rows");
  check(ds->putAndInsertUint16(DCM_Columns, s.columns), "Columns");
  check(ds->putAndInsertUint16(DCM_BitsAllocated, s.bits_allocated), "BitsAllocated");
  check(ds->putAndInsertUint16(DCM_BitsStored, s.bits_stored), "BitsStored");
  check(ds->putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(s.bits_stored - 1)), "HighBit");
  check(ds->putAndInsertUint16(DCM_PixelRepresentation, s.pixel_signed ? 1 : 0), "PixelRepresentation");
  check(ds->putAndInsertUint16(DCM_SamplesPerPixel, s.samples_per_pixel), "SamplesPerPixel");
  check(ds->putAndInsertString(DCM_PhotometricInterpretation, s.photometric.c_str()), "Photometric");
  if (s.samples_per_pixel > 1) {
    check(ds->putAndInsertUint16(DCM_PlanarConfiguration, s.planar_configuration), "PlanarConfiguration");
  }
  if (!s.number_of_frames.empty()) check(ds->putAndInsertString(DCM_NumberOfFrames, s.number_of_frames.c_str()), "Frames");
  if (s.write_rescale) {
    check(ds->putAndInsertString(DCM_RescaleSlope, s.slope.c_str()), "RescaleSlope");
    check(ds->putAndInsertString(DCM_RescaleIntercept, s.intercept.c_str()), "RescaleIntercept");
  }
  if (!s.pixel_spacing.empty()) check(ds->putAndInsertString(DCM_PixelSpacing, s.pixel_spacing.c_str()), "PixelSpacing");
  if (!s.slice_thickness.empty()) check(ds->putAndInsertString(DCM_SliceThickness, s.slice_thickness.c_str()), "Thickness");
  if (!s.position.empty()) check(ds->putAndInsertString(DCM_ImagePositionPatient, s.position.c_str()), "Position");
  if (!s.orientation.empty()) {
    check(ds->putAndInsertString(DCM_ImageOrientationPatient, s.orientation.c_str()), "Orientation");
  }
  if (!s.frame_of_reference_uid.empty()) {
    check(ds->putAndInsertString(DCM_FrameOfReferenceUID, s.frame_of_reference_uid.c_str()), "FrameOfReferenceUID");
  }
}

}  // namespace

void write_dicom(const fs::path& path, const DicomSpec& s) {
  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  write_header(ds, s);
  if (s.pixel_data) {
    if (s.bits_allocated == 16 && s.planar_configuration == 0) {
      const std::vector<std::int32_t> values = pixel_values(s);
      std::vector<Uint16> px;
      for (auto v : values) px.push_back(static_cast<Uint16>(v));
      check(ds->putAndInsertUint16Array(DCM_PixelData, px.data(), px.size()), "PixelData");
    } else {
      const std::string bytes = native_pixel_bytes(s);
      check(ds->putAndInsertUint8Array(DCM_PixelData, reinterpret_cast<const Uint8*>(bytes.data()), bytes.size()),
            "PixelData");
    }
  }
  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
  if (s.syntax == Syntax::kImplicitLittle) xfer = EXS_LittleEndianImplicit;
  if (s.syntax == Syntax::kExplicitBig) xfer = EXS_BigEndianExplicit;
  if (s.syntax == Syntax::kJpegLossless) {
    static std::once_flag once;
    std::call_once(once, [] { DJEncoderRegistration::registerCodecs(); });
    xfer = EXS_JPEGProcess14SV1;
    DJ_RPLossless params;
    check(ds->chooseRepresentation(xfer, &params), "JPEG encode");
  }
  check(file.saveFile(path.c_str(), xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0, 0,
                      s.part10 ? EWM_fileformat : EWM_dataset),
        "saveFile");
}

void write_encapsulated(const fs::path& path, const DicomSpec& s, const std::string& transfer_syntax_uid,
                        const std::vector<std::string>& frames) {
  DcmFileFormat file;
  DcmDataset* ds = file.getDataset();
  write_header(ds, s);
  const E_TransferSyntax xfer = DcmXfer(transfer_syntax_uid.c_str()).getXfer();
  if (xfer == EXS_Unknown) throw std::runtime_error("test DICOM writer: DCMTK does not know " + transfer_syntax_uid);
  auto* seq = new DcmPixelSequence(DcmTag(DCM_PixelData, EVR_OB));
  seq->insert(new DcmPixelItem(DcmTag(DCM_Item, EVR_OB)));
  for (const std::string& f : frames) {
    std::string bytes = f;
    if (bytes.size() % 2 == 1) bytes.push_back('\0');
    auto* item = new DcmPixelItem(DcmTag(DCM_Item, EVR_OB));
    check(item->putUint8Array(reinterpret_cast<const Uint8*>(bytes.data()), bytes.size()), "fragment");
    seq->insert(item);
  }
  auto* pixel = new DcmPixelData(DCM_PixelData);
  pixel->putOriginalRepresentation(xfer, nullptr, seq);
  check(ds->insert(pixel, true), "PixelData");
  check(file.saveFile(path.c_str(), xfer), "saveFile");
}

void patch_transfer_syntax(const fs::path& path, const std::string& from, const std::string& to) {
  std::string bytes = read_text(path);
  std::string padded_to = to;
  while (padded_to.size() < from.size()) padded_to.push_back('\0');
  if (padded_to.size() != from.size()) throw std::runtime_error("patch_transfer_syntax: lengths differ");
  const auto pos = bytes.find(from);
  if (pos == std::string::npos || pos > 400) throw std::runtime_error("patch_transfer_syntax: UID not in File Meta");
  bytes.replace(pos, from.size(), padded_to);
  write_text(path, bytes);
}

int run_command(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

fs::path copy_demo_package(const fs::path& dir) {
  const fs::path dst = dir / "package";
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(demo_model_dir())) fs::copy_file(e.path(), dst / e.path().filename());
  return dst;
}

std::string sha256_file(const fs::path& path) {
  const std::string cmd = "sha256sum '" + path.string() + "'";
  std::FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run sha256sum");
  std::array<char, 65> buf{};
  const std::size_t n = std::fread(buf.data(), 1, 64, p);
  pclose(p);
  if (n != 64) throw std::runtime_error("sha256sum failed for " + path.string());
  return std::string(buf.data(), 64);
}

ErrorCode error_code_of(const std::function<void()>& f, std::string* message) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  throw std::runtime_error("expected a medinfer::Error, but nothing was thrown");
}

}  // namespace medinfer::test
