// One DICOM object: walk (dicom_parse.cpp), header through DCMTK, frames through the codecs.
#include "dicom/dicom_file.hpp"

#include <medinfer/error.hpp>

#include "core/file_util.hpp"
#include "dicom/charset.hpp"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcobject.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/oflog/oflog.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <mutex>

namespace medinfer::dicom::detail {
namespace {

void init_dcmtk_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    // DCMTK logs to stderr by default; the library must never print (process-wide: docs/dicom.md).
    OFLog::getLogger("dcmtk").setLogLevel(OFLogger::OFF_LOG_LEVEL);
    // Files written with VR UN for known attributes (PS3.5 6.2.2): read them with the dictionary's
    // VR. Also process-wide in DCMTK; documented in docs/dicom.md.
    dcmEnableUnknownVRConversion.set(OFTrue);
  });
  if (!dcmDataDict.isDictionaryLoaded()) {
    throw Error(ErrorCode::kInternal,
                "DCMTK's data dictionary is not loaded (is DCMDICTPATH set to a missing file?)");
  }
}

// DCMTK reads the dataset straight from our bytes, minus the pixel element: a stream over one or two
// spans of memory. Its factory lets DCMTK leave values above kLazyValueBytes where they are and load
// them only if asked (as DCMTK does for files): a 500 MB text element costs no copy unless read.
// The spans live as long as the DicomFile that owns both them and the dataset.
using Span = std::pair<const std::uint8_t*, std::size_t>;
constexpr Uint32 kLazyValueBytes = 64 * 1024;

class SpanProducer : public DcmProducer {
 public:
  SpanProducer(std::vector<Span> spans, offile_off_t start) : spans_(std::move(spans)) {
    for (const Span& s : spans_) total_ += static_cast<offile_off_t>(s.second);
    pos_ = std::min(start, total_);
  }
  OFBool good() const override { return OFTrue; }
  OFCondition status() const override { return EC_Normal; }
  OFBool eos() override { return pos_ >= total_; }
  offile_off_t avail() override { return total_ - pos_; }
  offile_off_t read(void* buf, offile_off_t buflen) override {
    const offile_off_t n = std::min(buflen, avail());
    offile_off_t done = 0, base = 0;
    for (const Span& s : spans_) {
      const offile_off_t len = static_cast<offile_off_t>(s.second);
      if (done < n && pos_ + done < base + len) {
        const offile_off_t from = pos_ + done - base;
        const offile_off_t take = std::min(n - done, len - from);
        std::memcpy(static_cast<std::uint8_t*>(buf) + done, s.first + from, static_cast<std::size_t>(take));
        done += take;
      }
      base += len;
    }
    pos_ += done;
    return done;
  }
  offile_off_t skip(offile_off_t n) override {
    const offile_off_t k = std::min(n, avail());
    pos_ += k;
    return k;
  }
  void putback(offile_off_t n) override { pos_ -= std::min(n, pos_); }
  const std::vector<Span>& spans() const { return spans_; }
  offile_off_t position() const { return pos_; }

 private:
  std::vector<Span> spans_;
  offile_off_t total_ = 0, pos_ = 0;
};

class SpanStream : public DcmInputStream {
 public:
  SpanStream(std::vector<Span> spans, offile_off_t start) : DcmInputStream(&producer_), producer_(std::move(spans), start) {}
  DcmInputStreamFactory* newFactory() const override;

 private:
  SpanProducer producer_;
};

class SpanStreamFactory : public DcmInputStreamFactory {
 public:
  SpanStreamFactory(std::vector<Span> spans, offile_off_t start) : spans_(std::move(spans)), start_(start) {}
  DcmInputStream* create() const override { return new SpanStream(spans_, start_); }
  DcmInputStreamFactory* clone() const override { return new SpanStreamFactory(*this); }
  DcmInputStreamFactoryType ident() const override { return DFT_DcmInputFileStreamFactory; }

 private:
  std::vector<Span> spans_;
  offile_off_t start_;
};

DcmInputStreamFactory* SpanStream::newFactory() const {
  return new SpanStreamFactory(producer_.spans(), producer_.position());
}

std::string tag_name(const DcmTagKey& key) {
  DcmTag tag(key);
  return fmt::format("{} ({:04X},{:04X})", tag.getTagName(), key.getGroup(), key.getElement());
}

// Valid UTF-8 stays as it is; every byte that does not start a valid sequence becomes U+FFFD.
// Returns whether anything was replaced.
bool to_valid_utf8(std::string& s) {
  std::string out;
  bool replaced = false;
  std::size_t i = 0;
  const std::size_t n = s.size();
  auto cont = [&](std::size_t k) { return k < n && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80; };
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    if (c < 0x80) len = 1;
    else if (c >= 0xC2 && c <= 0xDF && cont(i + 1)) len = 2;
    else if (c >= 0xE0 && c <= 0xEF && cont(i + 1) && cont(i + 2)) {
      const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      if (!(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0)) len = 3;
    } else if (c >= 0xF0 && c <= 0xF4 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
      if (!(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90)) len = 4;
    }
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      replaced = true;
      ++i;
    } else {
      out.append(s, i, len);
      i += len;
    }
  }
  if (replaced) s = std::move(out);
  return replaced;
}

// ASCII without ESC: text every character set reads the same (ISO 2022 escapes need the converter).
bool is_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80 && c != 0x1B; });
}

// The item of a functional group for frame `frame`: the per-frame group when present, else shared.
DcmItem* functional_group(DcmDataset& ds, std::uint32_t frame, const DcmTagKey& group) {
  DcmItem* per_frame = nullptr;
  if (ds.findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, per_frame, static_cast<int>(frame)).good() &&
      per_frame != nullptr) {
    DcmItem* item = nullptr;
    if (per_frame->findAndGetSequenceItem(group, item, 0).good() && item != nullptr) return item;
  }
  DcmItem* shared = nullptr;
  if (ds.findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0).good() && shared != nullptr) {
    DcmItem* item = nullptr;
    if (shared->findAndGetSequenceItem(group, item, 0).good() && item != nullptr) return item;
  }
  return nullptr;
}

// A LUT Descriptor (entries, first mapped value, bits) into an empty Lut. The descriptor is US or SS
// (PS3.3 C.11.1.1): the 16 bits are read either way.
Lut read_lut_descriptor(DcmItem& item, const DcmTagKey& descriptor_key, const std::string& source,
                        const std::string& what) {
  Lut lut;
  auto word = [&](unsigned long i) -> Uint16 {
    Uint16 u = 0;
    if (item.findAndGetUint16(descriptor_key, u, i).good()) return u;
    Sint16 v = 0;
    if (item.findAndGetSint16(descriptor_key, v, i).good()) return static_cast<Uint16>(v);
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: {} has no valid {}", source, what, tag_name(descriptor_key)));
  };
  const Uint16 d0 = word(0), d1 = word(1), d2 = word(2);
  lut.entries = d0 == 0 ? 65536u : d0;
  // First mapped value is US or SS depending on the pixel representation; read the raw 16 bits.
  lut.first_mapped = static_cast<std::int32_t>(d1);
  lut.bits = d2;
  return lut;
}

Lut read_lut(DcmItem& item, const DcmTagKey& descriptor_key, const DcmTagKey& data_key, const std::string& source,
             const std::string& what) {
  Lut lut = read_lut_descriptor(item, descriptor_key, source, what);
  const Uint16* data = nullptr;
  unsigned long count = 0;
  DcmElement* element = nullptr;
  if (item.findAndGetElement(data_key, element).bad() || element == nullptr) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: {} has no {}", source, what, tag_name(data_key)));
  }
  Uint16* words = nullptr;
  Sint16* signed_words = nullptr;
  if (element->getUint16Array(words).good() && words != nullptr) {
    data = words;
  } else if (element->getSint16Array(signed_words).good() && signed_words != nullptr) {
    data = reinterpret_cast<const Uint16*>(signed_words);
  }
  count = element->getLength() / 2;
  if (data == nullptr) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: cannot read {} of the {}", source, tag_name(data_key), what));
  }
  if (lut.bits <= 8 && count * 2 >= lut.entries && count < lut.entries) {
    // 8-bit entries packed two per word.
    lut.data.resize(lut.entries);
    for (std::uint32_t i = 0; i < lut.entries; ++i) lut.data[i] = (data[i / 2] >> ((i % 2) * 8)) & 0xFF;
  } else {
    if (count < lut.entries) {
      throw Error(ErrorCode::kInvalidDicom,
                  fmt::format("{}: {} holds {} entries but its descriptor declares {}", source, what, count, lut.entries));
    }
    lut.data.assign(data, data + lut.entries);
  }
  return lut;
}

}  // namespace

// The file's bytes and an inflated dataset are blocks from core/block_cache (mmap'd, recycled), never
// malloc'd: a large malloc per file page-faulted according to glibc's dynamic mmap threshold, and a
// pool of malloc'd buffers kept that threshold low for the whole host process (measured: end-to-end
// predict 0.63 -> 2.4 ms with such a pool).
DicomFile::~DicomFile() = default;

void DicomFile::warn(HeaderWarningKind kind, const DcmTagKey& key, std::string message) {
  add_warning(header_.warnings, kind, key.getGroup(), key.getElement(), source_ + ": " + message);
}

std::string DicomFile::text(DcmItem& item, const DcmTagKey& key) {
  constexpr unsigned long kMaxText = 64 * 1024;
  DcmElement* e = nullptr;
  if (item.findAndGetElement(key, e).bad() || e == nullptr) return {};
  if (e->getLength() > kMaxText) {
    warn(HeaderWarningKind::kOversizedValue, key,
         fmt::format("{} holds {} bytes, above the {} read into the header: left out", tag_name(key), e->getLength(),
                     kMaxText));
    return {};
  }
  OFString s;
  if (e->getOFStringArray(s).bad()) return {};
  std::string out(s.c_str(), s.length());
  while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) out.pop_back();
  if (is_ascii(out)) return out;
  // Text beyond ASCII: decoded from the Specific Character Set into UTF-8 (charset.cpp).
  const DcmEVR vr = e->getTag().getEVR();
  const bool text_vr = vr == EVR_SH || vr == EVR_LO || vr == EVR_ST || vr == EVR_LT || vr == EVR_UT || vr == EVR_PN ||
                       vr == EVR_UC;
  if (text_vr && !charset_terms_.empty()) {
    if (auto utf8 = decode_text(out, charset_terms_, vr == EVR_PN)) return *utf8;
  }
  const bool replaced = to_valid_utf8(out);
  if (replaced || (text_vr && !charset_terms_.empty())) {
    warn(HeaderWarningKind::kCharacterSet, key,
         fmt::format("{} holds bytes that {} cannot decode: what is valid UTF-8 is kept, the rest replaced by U+FFFD",
                     tag_name(key),
                     charset_terms_.empty() ? std::string("the default repertoire (ASCII)") : "'" + charset_name_ + "'"));
  }
  return out;
}

template <std::size_t N>
bool DicomFile::numbers(DcmItem& item, const DcmTagKey& key, std::array<double, N>& out) {
  if (!item.tagExistsWithValue(key)) return false;
  std::array<double, N> v{};
  for (std::size_t i = 0; i < N; ++i) {
    Float64 x = 0;
    if (item.findAndGetFloat64(key, x, static_cast<unsigned long>(i)).bad() || !std::isfinite(x)) {
      warn(HeaderWarningKind::kInvalidValue, key,
           fmt::format("{} does not hold {} numbers: ignored", tag_name(key), N));
      return false;
    }
    v[i] = x;
  }
  out = v;
  return true;
}

PixelType PixelFormat::stored_type() const {
  if (float_data) return bits_allocated == 64 ? PixelType::kFloat64 : PixelType::kFloat32;
  const bool s = pixel_representation == 1;
  if (bits_allocated <= 8) return (s && bits_allocated == 8) ? PixelType::kInt8 : PixelType::kUInt8;
  if (bits_allocated <= 16) return s ? PixelType::kInt16 : PixelType::kUInt16;
  return s ? PixelType::kInt32 : PixelType::kUInt32;
}

double Lut::lookup(double stored) const {
  long index = std::lround(stored) - first_mapped;
  if (index < 0) index = 0;
  if (index >= static_cast<long>(entries)) index = static_cast<long>(entries) - 1;
  return data[static_cast<std::size_t>(index)];
}

void DicomFile::read_bytes(const std::string& path, std::size_t limit, std::uint64_t file_size) {
  owned_size_ = static_cast<std::size_t>(std::min<std::uint64_t>(limit, file_size));
  owned_ = medinfer::detail::Block(owned_size_ == 0 ? 1 : owned_size_);
  medinfer::detail::read_exactly(path, owned_.data(), owned_size_);
}

std::unique_ptr<DicomFile> DicomFile::open_path(const std::string& path, const ReadOptions& options) {
  init_dcmtk_once();
  std::unique_ptr<DicomFile> file(new DicomFile());
  file->source_ = path;
  const std::uint64_t size = medinfer::detail::checked_file_size(path, options.max_file_bytes,
                                                                 "ReadOptions::max_file_bytes");
  file->read_bytes(path, static_cast<std::size_t>(size), size);
  file->parse(file->owned_.data(), file->owned_size_, options);
  return file;
}

std::unique_ptr<DicomFile> DicomFile::open_header(const std::string& path, const ReadOptions& options) {
  constexpr std::size_t kPrefix = 256 * 1024;
  init_dcmtk_once();
  const std::uint64_t size = medinfer::detail::checked_file_size(path, options.max_file_bytes,
                                                                 "ReadOptions::max_file_bytes");
  if (size > kPrefix) {
    std::unique_ptr<DicomFile> file(new DicomFile());
    file->source_ = path;
    file->read_bytes(path, kPrefix, size);
    try {
      file->parse(file->owned_.data(), file->owned_size_, options, static_cast<std::size_t>(size));
      return file;
    } catch (const NeedFullRead&) {
      // fall through: the whole file decides
    }
  }
  return open_path(path, options);
}

std::unique_ptr<DicomFile> DicomFile::open_memory(const void* data, std::size_t size, const std::string& name,
                                                  const ReadOptions& options) {
  init_dcmtk_once();
  if (data == nullptr && size != 0) throw Error(ErrorCode::kInvalidArgument, name + ": null buffer with a non-zero size");
  if (size > options.max_file_bytes) {
    throw Error(ErrorCode::kResourceLimit, fmt::format("{}: {} bytes exceed the limit {} (ReadOptions::max_file_bytes)",
                                                       name, size, options.max_file_bytes));
  }
  std::unique_ptr<DicomFile> file(new DicomFile());
  file->source_ = name;
  // The caller's bytes are not retained: keep a copy (a Pixel Data reference would dangle).
  file->owned_ = medinfer::detail::Block(size == 0 ? 1 : size);
  if (size != 0) std::memcpy(file->owned_.data(), data, size);
  file->owned_size_ = size;
  file->parse(file->owned_.data(), file->owned_size_, options);
  return file;
}

void DicomFile::parse(const std::uint8_t* data, std::size_t size, const ReadOptions& options, std::size_t full_size) {
  options_ = options;
  if (size == 0) throw Error(ErrorCode::kInvalidDicom, source_ + ": empty input: not DICOM");
  layout_ = walk(data, size, source_, options.transfer_syntax_uid, options.max_file_bytes, inflated_, full_size);
  syntax_ = find_syntax(layout_.transfer_syntax_uid);
  parse_header(options);
  header_.has_pixel_data = layout_.pixel.present;
}

void DicomFile::parse_header(const ReadOptions& options) {
  // DCMTK parses everything but the pixel element (already located and bounds-checked), in place.
  const PixelElement& px = layout_.pixel;
  std::vector<Span> spans;
  if (px.present) {
    spans.emplace_back(layout_.dataset, px.start);
    // A prefix holds nothing after Pixel Data.
    if (layout_.complete && px.end < layout_.dataset_size) {
      spans.emplace_back(layout_.dataset + px.end, layout_.dataset_size - px.end);
    }
  } else {
    spans.emplace_back(layout_.dataset, layout_.dataset_size);
  }
  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
  if (!syntax_->explicit_vr) xfer = EXS_LittleEndianImplicit;
  if (syntax_->big_endian) xfer = EXS_BigEndianExplicit;
  if (spans[0].second != 0 || spans.size() > 1) {
    SpanStream stream(std::move(spans), 0);
    dataset_.transferInit();
    const OFCondition c = dataset_.read(stream, xfer, EGL_noChange, kLazyValueBytes);
    dataset_.transferEnd();
    if (c.bad()) {
      throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: DCMTK cannot parse the dataset: {}", source_, c.text()));
    }
  }

  ImageHeader& h = header_;
  DcmDataset& ds = dataset_;
  h.warnings = layout_.warnings;
  {
    OFString cs;
    if (ds.findAndGetOFStringArray(DCM_SpecificCharacterSet, cs).good()) charset_name_ = cs.c_str();
    charset_terms_ = character_set_terms(charset_name_);
    if (charset_terms_.size() == 1 && (charset_terms_[0].empty() || charset_terms_[0] == "ISO_IR 6")) charset_terms_.clear();
    if (!character_set_known(charset_terms_)) {
      warn(HeaderWarningKind::kCharacterSet, DCM_SpecificCharacterSet,
           fmt::format("{} '{}' is not one this reader decodes: its text keeps only what is valid UTF-8",
                       tag_name(DCM_SpecificCharacterSet), charset_name_));
      charset_terms_.clear();
    }
  }
  h.transfer_syntax_uid = layout_.transfer_syntax_uid;
  h.transfer_syntax_name = syntax_->name;
  h.sop_class_uid = text(ds, DCM_SOPClassUID);
  if (h.sop_class_uid.empty()) h.sop_class_uid = layout_.media_storage_sop_class_uid;
  h.sop_instance_uid = text(ds, DCM_SOPInstanceUID);
  h.study_instance_uid = text(ds, DCM_StudyInstanceUID);
  h.series_instance_uid = text(ds, DCM_SeriesInstanceUID);
  h.frame_of_reference_uid = text(ds, DCM_FrameOfReferenceUID);
  h.modality = text(ds, DCM_Modality);
  h.body_part_examined = text(ds, DCM_BodyPartExamined);
  h.manufacturer = text(ds, DCM_Manufacturer);
  h.manufacturer_model_name = text(ds, DCM_ManufacturerModelName);
  h.study_date = text(ds, DCM_StudyDate);
  h.series_date = text(ds, DCM_SeriesDate);
  h.acquisition_date = text(ds, DCM_AcquisitionDate);
  h.content_date = text(ds, DCM_ContentDate);
  h.series_description = text(ds, DCM_SeriesDescription);
  {
    // Bounded by the element's VM: for some VRs DCMTK returns the whole value for any index, so
    // "until it fails" would never end (found by the fuzzer).
    DcmElement* e = nullptr;
    if (ds.findAndGetElement(DCM_ImageType, e).good() && e != nullptr && e->getLength() <= 64 * 1024) {
      const unsigned long vm = std::min<unsigned long>(e->getVM(), 64);
      OFString v;
      for (unsigned long i = 0; i < vm && e->getOFString(v, i).good(); ++i) {
        std::string value(v.c_str());
        if (to_valid_utf8(value)) warn(HeaderWarningKind::kCharacterSet, DCM_ImageType, "ImageType holds bytes that are not text");
        h.image_type.push_back(std::move(value));
      }
    }
  }
  h.photometric_interpretation = text(ds, DCM_PhotometricInterpretation);
  {
    Sint32 n = 0;
    if (ds.findAndGetSint32(DCM_InstanceNumber, n).good()) h.instance_number = n;
  }

  PixelFormat& f = format_;
  f.float_data = px.present && px.element != 0x0010;
  auto us = [&](const DcmTagKey& key, Uint16 fallback, bool required) -> Uint16 {
    Uint16 v = 0;
    if (ds.findAndGetUint16(key, v).good()) return v;
    if (required && px.present) {
      throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: missing or malformed {}", source_, tag_name(key)));
    }
    return fallback;
  };
  h.rows = us(DCM_Rows, 0, true);
  h.columns = us(DCM_Columns, 0, true);
  h.bits_allocated = us(DCM_BitsAllocated, 0, true);
  h.bits_stored = us(DCM_BitsStored, h.bits_allocated, !f.float_data);
  h.high_bit = us(DCM_HighBit, static_cast<Uint16>(h.bits_stored > 0 ? h.bits_stored - 1 : 0), false);
  h.pixel_signed = us(DCM_PixelRepresentation, 0, !f.float_data) == 1;
  h.samples_per_pixel = us(DCM_SamplesPerPixel, 1, false);
  h.planar_configuration = us(DCM_PlanarConfiguration, 0, false);
  h.float_pixels = f.float_data;
  {
    OFString frames;
    if (ds.findAndGetOFString(DCM_NumberOfFrames, frames).good() && !frames.empty()) {
      char* end = nullptr;
      const long n = std::strtol(frames.c_str(), &end, 10);
      if (end == frames.c_str() || n < 1) {
        throw Error(ErrorCode::kInvalidDicom,
                    fmt::format("{}: {} is '{}': not a positive integer", source_, tag_name(DCM_NumberOfFrames), frames.c_str()));
      }
      if (static_cast<unsigned long>(n) > options.max_frames) {
        throw Error(ErrorCode::kResourceLimit, fmt::format("{}: {} = {} exceeds the limit {} (ReadOptions::max_frames)",
                                                           source_, tag_name(DCM_NumberOfFrames), n, options.max_frames));
      }
      h.frames = static_cast<std::uint32_t>(n);
    }
  }
  f.rows = h.rows;
  f.columns = h.columns;
  f.frames = h.frames;
  f.samples = h.samples_per_pixel;
  f.bits_allocated = h.bits_allocated;
  f.bits_stored = h.bits_stored;
  f.pixel_representation = h.pixel_signed ? 1 : 0;
  f.planar = h.planar_configuration;
  f.photometric = h.photometric_interpretation;
  f.syntax_uid = layout_.transfer_syntax_uid;

  // Modality LUT: slope/intercept, or a Modality LUT Sequence; enhanced objects per frame.
  {
    auto [slope, intercept] = frame_rescale(0);
    h.rescale_slope = slope;
    h.rescale_intercept = intercept;
    DcmItem* item = nullptr;
    if (ds.findAndGetSequenceItem(DCM_ModalityLUTSequence, item, 0).good() && item != nullptr) {
      modality_lut_ = read_lut(*item, DCM_LUTDescriptor, DCM_LUTData, source_, tag_name(DCM_ModalityLUTSequence));
      h.has_modality_lut_sequence = true;
    }
  }
  {
    Float64 c = 0.0, w = 0.0;
    DcmItem* voi = functional_group(ds, 0, DCM_FrameVOILUTSequence);
    DcmItem& src = voi != nullptr ? *voi : static_cast<DcmItem&>(ds);
    if (src.findAndGetFloat64(DCM_WindowCenter, c).good() && src.findAndGetFloat64(DCM_WindowWidth, w).good() &&
        std::isfinite(c) && std::isfinite(w) && w > 0.0) {
      h.has_window = true;
      h.window_center = c;
      h.window_width = w;
    }
    const std::string fn = text(src, DCM_VOILUTFunction);
    if (!fn.empty()) h.voi_lut_function = fn;
    DcmItem* voi_item = nullptr;
    if (ds.findAndGetSequenceItem(DCM_VOILUTSequence, voi_item, 0).good() && voi_item != nullptr &&
        voi_item->tagExistsWithValue(DCM_LUTData)) {
      const Lut lut = read_lut(*voi_item, DCM_LUTDescriptor, DCM_LUTData, source_, tag_name(DCM_VOILUTSequence));
      // The first mapped value is signed when the values it maps are (PS3.3 C.11.2.1.1).
      h.voi_lut_first_mapped = (h.pixel_signed || h.rescale_intercept < 0) ? static_cast<std::int16_t>(lut.first_mapped)
                                                                              : lut.first_mapped;
      h.voi_lut = lut.data;
      h.voi_lut_bits = lut.bits == 0 ? 16 : lut.bits;
      h.has_voi_lut_sequence = true;
    }
  }
  {
    Float64 pad = 0;
    if (ds.findAndGetFloat64(DCM_PixelPaddingValue, pad).good()) {
      h.has_pixel_padding = true;
      h.pixel_padding_value = pad;
    }
  }
  {
    DcmItem* measures = functional_group(ds, 0, DCM_PixelMeasuresSequence);
    DcmItem& src = measures != nullptr ? *measures : static_cast<DcmItem&>(ds);
    std::array<double, 2> spacing{};
    bool has = numbers(src, DCM_PixelSpacing, spacing);
    if (!has) has = numbers(ds, DCM_ImagerPixelSpacing, spacing);
    if (has && (!(spacing[0] > 0.0) || !(spacing[1] > 0.0))) {
      warn(HeaderWarningKind::kInvalidValue, DCM_PixelSpacing,
           fmt::format("{} is {}\\{}: spacing must be > 0; the image has no pixel spacing", tag_name(DCM_PixelSpacing),
                       spacing[0], spacing[1]));
      has = false;
    }
    if (has) {
      h.has_pixel_spacing = true;
      h.pixel_spacing = spacing;
    }
    Float64 thickness = 0;
    if (src.findAndGetFloat64(DCM_SliceThickness, thickness).good() && std::isfinite(thickness)) {
      h.slice_thickness = thickness;
    }
  }
  if (auto position = frame_position(0)) {
    h.has_position = true;
    h.image_position = *position;
  }
  {
    DcmItem* orient = functional_group(ds, 0, DCM_PlaneOrientationSequence);
    DcmItem& src = orient != nullptr ? *orient : static_cast<DcmItem&>(ds);
    h.has_orientation = numbers(src, DCM_ImageOrientationPatient, h.image_orientation);
  }
  if (px.present && px.encapsulated) map_frames();
}

std::optional<std::array<double, 3>> DicomFile::frame_position(std::uint32_t index) {
  std::array<double, 3> p{};
  if (DcmItem* item = functional_group(dataset_, index, DCM_PlanePositionSequence)) {
    if (numbers(*item, DCM_ImagePositionPatient, p)) return p;
  }
  // Classic multi-frame objects have one position: it belongs to the first frame only.
  if ((index == 0 || header_.frames == 1) && numbers(dataset_, DCM_ImagePositionPatient, p)) return p;
  return std::nullopt;
}

std::pair<double, double> DicomFile::frame_rescale(std::uint32_t index) {
  DcmItem* item = functional_group(dataset_, index, DCM_PixelValueTransformationSequence);
  DcmItem& src = item != nullptr ? *item : static_cast<DcmItem&>(dataset_);
  Float64 slope = 1.0, intercept = 0.0;
  const bool has_slope = src.tagExistsWithValue(DCM_RescaleSlope);
  const bool has_intercept = src.tagExistsWithValue(DCM_RescaleIntercept);
  if (has_slope && src.findAndGetFloat64(DCM_RescaleSlope, slope).bad()) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: malformed {}", source_, tag_name(DCM_RescaleSlope)));
  }
  if (has_intercept && src.findAndGetFloat64(DCM_RescaleIntercept, intercept).bad()) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: malformed {}", source_, tag_name(DCM_RescaleIntercept)));
  }
  if (!std::isfinite(slope) || slope == 0.0 || !std::isfinite(intercept)) {
    throw Error(ErrorCode::kInvalidDicom,
                fmt::format("{}: {} = {} and {} = {}: slope must be finite and non-zero", source_,
                            tag_name(DCM_RescaleSlope), slope, tag_name(DCM_RescaleIntercept), intercept));
  }
  return {slope, intercept};
}

std::array<Lut, 3> DicomFile::palette() {
  const std::string what = "PALETTE COLOR lookup table";
  std::array<Lut, 3> out;
  const DcmTagKey descriptors[3] = {DCM_RedPaletteColorLookupTableDescriptor, DCM_GreenPaletteColorLookupTableDescriptor,
                                    DCM_BluePaletteColorLookupTableDescriptor};
  const DcmTagKey data[3] = {DCM_RedPaletteColorLookupTableData, DCM_GreenPaletteColorLookupTableData,
                             DCM_BluePaletteColorLookupTableData};
  const DcmTagKey segmented[3] = {DCM_SegmentedRedPaletteColorLookupTableData,
                                  DCM_SegmentedGreenPaletteColorLookupTableData,
                                  DCM_SegmentedBluePaletteColorLookupTableData};
  for (int c = 0; c < 3; ++c) {
    if (!dataset_.tagExistsWithValue(data[c]) && dataset_.tagExistsWithValue(segmented[c])) {
      out[c] = read_segmented_lut(descriptors[c], segmented[c]);
      continue;
    }
    out[c] = read_lut(dataset_, descriptors[c], data[c], source_, what);
  }
  return out;
}

// Segmented palette data (PS3.3 C.7.9.2): discrete (0), linear (1) and indirect (2) segments.
Lut DicomFile::read_segmented_lut(const DcmTagKey& descriptor, const DcmTagKey& data_key) {
  const std::string where = source_ + ": " + tag_name(data_key);
  Lut lut = read_lut_descriptor(dataset_, descriptor, source_, "PALETTE COLOR lookup table");
  DcmElement* element = nullptr;
  Uint16* words = nullptr;
  if (dataset_.findAndGetElement(data_key, element).bad() || element == nullptr ||
      element->getUint16Array(words).bad() || words == nullptr) {
    throw Error(ErrorCode::kInvalidDicom, where + ": cannot be read");
  }
  const std::size_t n = element->getLength() / 2;
  std::vector<double> values;
  // Expands `count` segments (all when 0) starting at word `pos`; indirect segments recurse.
  std::function<void(std::size_t, std::size_t, int)> expand = [&](std::size_t pos, std::size_t count, int depth) {
    if (depth > 4) throw Error(ErrorCode::kInvalidDicom, where + ": indirect segments nested too deep");
    for (std::size_t seg = 0; pos < n && (count == 0 || seg < count) && values.size() < lut.entries; ++seg) {
      const Uint16 op = words[pos];
      if (pos + 1 >= n) throw Error(ErrorCode::kInvalidDicom, where + ": truncated segment");
      const std::size_t len = words[pos + 1];
      if (op == 0) {
        if (pos + 2 + len > n) throw Error(ErrorCode::kInvalidDicom, where + ": a discrete segment passes the end");
        for (std::size_t j = 0; j < len; ++j) values.push_back(words[pos + 2 + j]);
        pos += 2 + len;
      } else if (op == 1) {
        if (pos + 2 >= n || values.empty()) throw Error(ErrorCode::kInvalidDicom, where + ": a linear segment has no start");
        const double y0 = values.back(), y1 = words[pos + 2];
        for (std::size_t j = 1; j <= len; ++j) values.push_back(std::nearbyint(y0 + (y1 - y0) * static_cast<double>(j) / len));
        pos += 3;
      } else if (op == 2) {
        if (pos + 3 >= n) throw Error(ErrorCode::kInvalidDicom, where + ": truncated indirect segment");
        const std::size_t offset = (std::size_t{words[pos + 2]} | std::size_t{words[pos + 3]} << 16) / 2;
        if (offset >= pos) throw Error(ErrorCode::kInvalidDicom, where + ": an indirect segment points forward");
        expand(offset, len, depth + 1);
        pos += 4;
      } else {
        throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: unknown segment type {}", where, op));
      }
    }
  };
  expand(0, 0, 0);
  if (values.size() < lut.entries) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: expands to {} entries; the descriptor declares {}", where,
                                                      values.size(), lut.entries));
  }
  lut.data.reserve(lut.entries);
  for (std::size_t i = 0; i < lut.entries; ++i) lut.data.push_back(static_cast<std::uint16_t>(values[i]));
  return lut;
}

PatientIdentifiers DicomFile::identifiers() {
  PatientIdentifiers p;
  p.patient_name = text(dataset_, DCM_PatientName);
  p.patient_id = text(dataset_, DCM_PatientID);
  p.patient_birth_date = text(dataset_, DCM_PatientBirthDate);
  p.patient_sex = text(dataset_, DCM_PatientSex);
  p.other_patient_ids = text(dataset_, DCM_RETIRED_OtherPatientIDs);
  p.accession_number = text(dataset_, DCM_AccessionNumber);
  p.institution_name = text(dataset_, DCM_InstitutionName);
  p.referring_physician_name = text(dataset_, DCM_ReferringPhysicianName);
  p.study_id = text(dataset_, DCM_StudyID);
  return p;
}

void DicomFile::require_pixels(std::uint32_t frames) const {
  const ImageHeader& h = header_;
  const PixelFormat& f = format_;
  if (!layout_.pixel.present) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: has no {}: not an image", source_, tag_name(DCM_PixelData)));
  }
  if (h.rows == 0 || h.columns == 0) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: {} x {} is {} x {}: an image needs both > 0", source_,
                                                      tag_name(DCM_Rows), tag_name(DCM_Columns), h.rows, h.columns));
  }
  if (h.rows > options_.max_rows || h.columns > options_.max_columns) {
    throw Error(ErrorCode::kResourceLimit,
                fmt::format("{}: {} x {} = {} x {} exceeds the limit {} x {} (ReadOptions::max_rows/max_columns)", source_,
                            tag_name(DCM_Rows), tag_name(DCM_Columns), h.rows, h.columns, options_.max_rows,
                            options_.max_columns));
  }
  if (f.samples != 1 && f.samples != 3) {
    throw Error(ErrorCode::kInvalidDicom,
                fmt::format("{}: {} is {}: must be 1 or 3", source_, tag_name(DCM_SamplesPerPixel), f.samples));
  }
  if (f.photometric.empty()) {
    throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: missing or empty {}", source_,
                                                      tag_name(DCM_PhotometricInterpretation)));
  }
  static const char* kKnown[] = {"MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422",
                                 "YBR_ICT", "YBR_RCT", "PALETTE COLOR", "YBR_PARTIAL_420", "YBR_PARTIAL_422"};
  if (std::none_of(std::begin(kKnown), std::end(kKnown), [&](const char* k) { return f.photometric == k; })) {
    throw Error(ErrorCode::kUnsupported, fmt::format("{}: {} '{}' is not supported", source_,
                                                     tag_name(DCM_PhotometricInterpretation), f.photometric));
  }
  const bool mono = f.photometric == "MONOCHROME1" || f.photometric == "MONOCHROME2" || f.photometric == "PALETTE COLOR";
  if (mono != (f.samples == 1)) {
    throw Error(ErrorCode::kInvalidDicom,
                fmt::format("{}: {} '{}' does not match {} = {}", source_, tag_name(DCM_PhotometricInterpretation),
                            f.photometric, tag_name(DCM_SamplesPerPixel), f.samples));
  }
  if (f.float_data) {
    if (!(f.bits_allocated == 32 || f.bits_allocated == 64)) {
      throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: float pixel data needs {} 32 or 64, not {}", source_,
                                                        tag_name(DCM_BitsAllocated), f.bits_allocated));
    }
  } else {
    if (f.bits_allocated != 1 && f.bits_allocated != 8 && f.bits_allocated != 16 && f.bits_allocated != 32) {
      throw Error(ErrorCode::kUnsupported, fmt::format("{}: {} = {} is not supported (1, 8, 16 or 32)", source_,
                                                       tag_name(DCM_BitsAllocated), f.bits_allocated));
    }
    if (f.bits_stored == 0 || f.bits_stored > f.bits_allocated) {
      throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: {} = {} must be in 1..{} ({})", source_,
                                                        tag_name(DCM_BitsStored), f.bits_stored, f.bits_allocated,
                                                        tag_name(DCM_BitsAllocated)));
    }
  }
  const std::uint64_t bytes = std::uint64_t{frames} * f.frame_out_bytes();
  if (bytes > options_.max_pixel_bytes) {
    throw Error(ErrorCode::kResourceLimit,
                fmt::format("{}: {} frame(s) of {} x {} x {} samples decode to {} bytes, above the limit {} "
                            "(ReadOptions::max_pixel_bytes)",
                            source_, frames, f.rows, f.columns, f.samples, bytes, options_.max_pixel_bytes));
  }
  const PixelElement& px = layout_.pixel;
  if (!px.encapsulated) {
    if (syntax_->codec != Codec::kNative) {
      throw Error(ErrorCode::kInvalidDicom, fmt::format("{}: transfer syntax {} needs encapsulated {}", source_,
                                                        syntax_->uid, tag_name(DCM_PixelData)));
    }
    std::uint64_t bits = std::uint64_t{f.frames} * f.rows * f.columns * f.samples * f.bits_allocated;
    if (f.photometric == "YBR_FULL_422") bits = bits * 2 / 3;
    const std::uint64_t needed = (bits + 7) / 8;
    if (px.value_length < needed) {
      throw Error(ErrorCode::kInvalidDicom,
                  fmt::format("{}: {} holds {} bytes but {} frame(s) of {} x {} x {} samples of {} bits need {}: truncated "
                              "or inconsistent",
                              source_, tag_name(DcmTagKey(0x7FE0, px.element)), px.value_length, f.frames, f.rows,
                              f.columns, f.samples, f.bits_allocated, needed));
    }
  } else {
    if (syntax_->codec == Codec::kNative) {
      throw Error(ErrorCode::kInvalidDicom,
                  fmt::format("{}: {} is encapsulated but transfer syntax {} is uncompressed", source_,
                              tag_name(DCM_PixelData), syntax_->uid));
    }
    if (frame_fragments_.size() != f.frames) {
      throw Error(ErrorCode::kInvalidDicom,
                  fmt::format("{}: {} has {} fragment(s) that cannot be split into {} frames", source_,
                              tag_name(DCM_PixelData), px.fragments.size(), f.frames));
    }
  }
}

void DicomFile::map_frames() {
  const PixelElement& px = layout_.pixel;
  const std::size_t n = px.fragments.size();
  const std::uint32_t frames = format_.frames;
  frame_fragments_.clear();
  if (n == 0) return;
  if (frames == 1) {
    frame_fragments_.push_back({0, n});
    return;
  }
  if (px.offset_table.size() == frames) {
    // Offsets count from the first byte of the first fragment's item header.
    const std::size_t origin = px.fragments[0].offset - 8;
    std::vector<std::size_t> starts;
    bool ok = px.offset_table[0] == 0;
    std::size_t f = 0;
    for (std::uint32_t k = 0; k < frames && ok; ++k) {
      const std::size_t target = origin + px.offset_table[k];
      while (f < n && px.fragments[f].offset - 8 < target) ++f;
      if (f == n || px.fragments[f].offset - 8 != target) ok = false;
      starts.push_back(f);
    }
    if (ok) {
      for (std::uint32_t k = 0; k < frames; ++k) {
        const std::size_t last = k + 1 < frames ? starts[k + 1] : n;
        if (last <= starts[k]) { ok = false; break; }
        frame_fragments_.push_back({starts[k], last});
      }
      if (ok) return;
      frame_fragments_.clear();
    }
  }
  if (n == frames) {
    for (std::size_t k = 0; k < n; ++k) frame_fragments_.push_back({k, k + 1});
    return;
  }
  // No usable offset table: a frame starts at a fragment that begins a codestream.
  auto starts_frame = [&](const Fragment& fr) {
    const std::uint8_t* p = layout_.dataset + fr.offset;
    if (fr.length < 4) return false;
    switch (syntax_->codec) {
      case Codec::kJpeg:
      case Codec::kJpegLs: return p[0] == 0xFF && p[1] == 0xD8;
      case Codec::kJpeg2000:
        return (p[0] == 0xFF && p[1] == 0x4F && p[2] == 0xFF && p[3] == 0x51) ||
               (fr.length >= 8 && p[4] == 'j' && p[5] == 'P' && p[6] == ' ' && p[7] == ' ');
      case Codec::kRle: return fr.length >= 64 && p[4] == 64 && p[5] == 0 && p[6] == 0 && p[7] == 0;
      default: return false;
    }
  };
  std::vector<std::size_t> starts;
  for (std::size_t k = 0; k < n; ++k) {
    if (starts_frame(px.fragments[k])) starts.push_back(k);
  }
  if (starts.size() == frames && starts[0] == 0) {
    for (std::uint32_t k = 0; k < frames; ++k) frame_fragments_.push_back({starts[k], k + 1 < frames ? starts[k + 1] : n});
  }
}

std::pair<const std::uint8_t*, std::size_t> DicomFile::frame_bytes(std::uint32_t index,
                                                                   std::vector<std::uint8_t>& scratch) const {
  const auto [first, last] = frame_fragments_[index];
  const auto& frags = layout_.pixel.fragments;
  if (last - first == 1) return {layout_.dataset + frags[first].offset, frags[first].length};
  scratch.clear();
  for (std::size_t k = first; k < last; ++k) {
    scratch.insert(scratch.end(), layout_.dataset + frags[k].offset, layout_.dataset + frags[k].offset + frags[k].length);
  }
  return {scratch.data(), scratch.size()};
}

std::string DicomFile::stored_photometric() const {
  const std::string& p = format_.photometric;
  if (syntax_->codec == Codec::kJpeg && (p == "YBR_FULL_422" || p == "YBR_PARTIAL_422" || p == "YBR_PARTIAL_420")) {
    return "YBR_FULL";
  }
  if (syntax_->codec == Codec::kJpeg2000 && (p == "YBR_ICT" || p == "YBR_RCT")) return "RGB";
  return p;
}

void DicomFile::decode_frame(std::uint32_t index, std::uint8_t* out) const {
  if (!layout_.complete) throw Error(ErrorCode::kInternal, source_ + ": pixels decoded from a header-only read");
  if (index >= format_.frames) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: frame {} requested but the object has {} frame(s)", source_, index, format_.frames));
  }
  const PixelElement& px = layout_.pixel;
  const PixelFormat& f = format_;
  if (!px.encapsulated) {
    std::uint64_t frame_bits = std::uint64_t{f.rows} * f.columns * f.samples * f.bits_allocated;
    if (f.photometric == "YBR_FULL_422") frame_bits = frame_bits * 2 / 3;
    const std::uint64_t bit_offset = frame_bits * index;
    if (decode_native(layout_.dataset + px.value_offset, px.value_length, static_cast<std::size_t>(bit_offset), f,
                      syntax_->big_endian, px.vr, out)) {
      return;  // already masked
    }
  } else {
    std::vector<std::uint8_t> scratch;
    const auto [data, size] = frame_bytes(index, scratch);
    switch (syntax_->codec) {
      case Codec::kRle: decode_rle(data, size, f, source_, out); break;
      case Codec::kJpeg2000: decode_jpeg2000(data, size, f, source_, out); break;
      case Codec::kJpegLs: decode_jpegls(data, size, f, source_, out); break;
      case Codec::kJpeg: decode_jpeg(data, size, f, source_, out, nullptr); break;
      case Codec::kDeflateFrame: {
        const std::size_t expected = (std::size_t{f.rows} * f.columns * f.samples * f.bits_allocated + 7) / 8;
        thread_local std::vector<std::uint8_t> native;  // reused: no fresh pages per frame
        inflate_frame(data, size, expected, source_, native);
        decode_native(native.data(), native.size(), 0, f, false, "OB", out);
        break;
      }
      case Codec::kNative: break;
    }
  }
  mask_stored(f, out, f.frame_samples());
}

}  // namespace medinfer::dicom::detail
