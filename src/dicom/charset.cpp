// Specific Character Set (PS3.3 C.12.1.1.2, PS3.5 6.1) to UTF-8 through the C library's iconv.
//
// DCMTK's converter hands the whole value to iconv under the name of its first character set, which
// glibc cannot do for the ISO 2022 Japanese sets (there is no "ISO-IR-87" or "JIS_X0201" in glibc), so
// code extension is done here: the value is split at its escape sequences (and at the delimiters that
// reset to the initial state), and each run is converted from the set in force.
#include "dicom/charset.hpp"

#include <iconv.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace medinfer::dicom::detail {
namespace {

// One run through iconv; nullopt when the bytes are not valid in `encoding` (or it is unknown).
std::optional<std::string> iconv_utf8(const char* encoding, const std::string& bytes) {
  if (bytes.empty()) return std::string();
  iconv_t cd = iconv_open("UTF-8", encoding);
  if (cd == reinterpret_cast<iconv_t>(-1)) return std::nullopt;
  std::string out(bytes.size() * 4 + 8, '\0');
  char* in = const_cast<char*>(bytes.data());
  std::size_t in_left = bytes.size();
  char* dst = out.data();
  std::size_t out_left = out.size();
  const std::size_t rc = iconv(cd, &in, &in_left, &dst, &out_left);
  iconv_close(cd);
  if (rc == static_cast<std::size_t>(-1) || in_left != 0) return std::nullopt;
  out.resize(out.size() - out_left);
  return out;
}

// The iconv name of a single-byte or multi-byte defined term (with or without "ISO 2022").
const char* iconv_name(const std::string& term) {
  struct Entry {
    const char* suffix;
    const char* iconv;
  };
  static const Entry kSets[] = {
      {"IR 6", "ASCII"},         {"IR 100", "ISO-8859-1"},  {"IR 101", "ISO-8859-2"}, {"IR 109", "ISO-8859-3"},
      {"IR 110", "ISO-8859-4"},  {"IR 144", "ISO-8859-5"},  {"IR 127", "ISO-8859-6"}, {"IR 126", "ISO-8859-7"},
      {"IR 138", "ISO-8859-8"},  {"IR 148", "ISO-8859-9"},  {"IR 203", "ISO-8859-15"}, {"IR 166", "TIS-620"},
      {"IR 192", "UTF-8"},       {"GB18030", "GB18030"},    {"GBK", "GBK"},           {"IR 149", "EUC-KR"},
      {"IR 58", "GB2312"},
  };
  for (const Entry& e : kSets) {
    const std::size_t n = std::strlen(e.suffix);
    if (term.size() >= n && term.compare(term.size() - n, n, e.suffix) == 0 &&
        (term.size() == n || term[term.size() - n - 1] == '_' || term[term.size() - n - 1] == ' ')) {
      return e.iconv;
    }
  }
  return nullptr;
}

// What is designated to G0 or G1 while a value is decoded.
enum class Set { kAscii, kJisX0208, kJisX0212, kKatakana, kSingleByte, kDoubleByteGr, kNone };
struct Designation {
  Set set = Set::kAscii;
  const char* iconv = "ASCII";  // for kSingleByte / kDoubleByteGr
};

Designation initial_g1(const std::string& term) {
  if (term.empty() || term == "ISO 2022 IR 6" || term == "ISO 2022 IR 87" || term == "ISO 2022 IR 159") return {Set::kNone, nullptr};
  if (term == "ISO 2022 IR 13" || term == "ISO_IR 13") return {Set::kKatakana, nullptr};
  const char* name = iconv_name(term);
  if (name == nullptr) return {Set::kNone, nullptr};
  const bool double_byte = std::strcmp(name, "EUC-KR") == 0 || std::strcmp(name, "GB2312") == 0;
  return {double_byte ? Set::kDoubleByteGr : Set::kSingleByte, name};
}

void append_utf8(std::string& out, unsigned code) {
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

// ISO 2022 code extension (PS3.5 6.1.2.5). nullopt when a byte or escape cannot be decoded.
std::optional<std::string> decode_iso2022(const std::string& s, const std::vector<std::string>& terms, bool person_name) {
  const Designation g1_initial = initial_g1(terms.empty() ? std::string() : terms[0]);
  Designation g0, g1 = g1_initial;
  std::string out;
  std::size_t i = 0;
  auto reset = [&] {
    g0 = {};
    g1 = g1_initial;
  };
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0x1B) {
      const std::string esc = s.substr(i + 1, 3);
      auto starts = [&](const char* p) { return esc.compare(0, std::strlen(p), p) == 0; };
      std::size_t len = 0;
      if (starts("(B") || starts("(J")) g0 = {Set::kAscii, "ASCII"}, len = 2;
      else if (starts("(I")) g0 = {Set::kKatakana, nullptr}, len = 2;
      else if (starts("$B") || starts("$@")) g0 = {Set::kJisX0208, nullptr}, len = 2;
      else if (starts("$(D")) g0 = {Set::kJisX0212, nullptr}, len = 3;
      else if (starts(")I")) g1 = {Set::kKatakana, nullptr}, len = 2;
      else if (starts("$)C")) g1 = {Set::kDoubleByteGr, "EUC-KR"}, len = 3;
      else if (starts("$)A")) g1 = {Set::kDoubleByteGr, "GB2312"}, len = 3;
      else if (esc.size() >= 2 && esc[0] == '-') {
        static const char* kG1[][2] = {{"A", "ISO-8859-1"}, {"B", "ISO-8859-2"}, {"C", "ISO-8859-3"},
                                       {"D", "ISO-8859-4"}, {"L", "ISO-8859-5"}, {"G", "ISO-8859-6"},
                                       {"F", "ISO-8859-7"}, {"H", "ISO-8859-8"}, {"M", "ISO-8859-9"},
                                       {"b", "ISO-8859-15"}, {"T", "TIS-620"}};
        for (const auto& e : kG1) {
          if (esc[1] == e[0][0]) g1 = {Set::kSingleByte, e[1]}, len = 2;
        }
      }
      if (len == 0) return std::nullopt;
      i += 1 + len;
      continue;
    }
    if (c < 0x80) {
      if (g0.set == Set::kJisX0208 || g0.set == Set::kJisX0212) {
        if (c < 0x21 || i + 1 >= s.size()) {  // a control character ends the double-byte run
          out += static_cast<char>(c);
          if (c == '\r' || c == '\n') reset();
          ++i;
          continue;
        }
        std::string euc;
        if (g0.set == Set::kJisX0212) euc += '\x8F';
        euc += static_cast<char>(c | 0x80);
        euc += static_cast<char>(static_cast<unsigned char>(s[i + 1]) | 0x80);
        const auto u = iconv_utf8("EUC-JP", euc);
        if (!u) return std::nullopt;
        out += *u;
        i += 2;
        continue;
      }
      if (g0.set == Set::kKatakana && c >= 0x21 && c <= 0x5F) {
        append_utf8(out, 0xFF61 + (c - 0x21));
        ++i;
        continue;
      }
      out += static_cast<char>(c);
      if (c == '\\' || c == '\r' || c == '\n' || c == '\t' || c == '\f' || (person_name && (c == '^' || c == '='))) {
        reset();
      }
      ++i;
      continue;
    }
    switch (g1.set) {
      case Set::kKatakana:
        if (c < 0xA1 || c > 0xDF) return std::nullopt;
        append_utf8(out, 0xFF61 + (c - 0xA1));
        ++i;
        break;
      case Set::kSingleByte: {
        const auto u = iconv_utf8(g1.iconv, std::string(1, static_cast<char>(c)));
        if (!u) return std::nullopt;
        out += *u;
        ++i;
        break;
      }
      case Set::kDoubleByteGr: {
        if (i + 1 >= s.size()) return std::nullopt;
        const auto u = iconv_utf8(g1.iconv, s.substr(i, 2));
        if (!u) return std::nullopt;
        out += *u;
        i += 2;
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> character_set_terms(const std::string& value) {
  std::vector<std::string> terms;
  std::stringstream in(value);
  std::string term;
  while (std::getline(in, term, '\\')) {
    while (!term.empty() && term.back() == ' ') term.pop_back();
    while (!term.empty() && term.front() == ' ') term.erase(0, 1);
    terms.push_back(term);
  }
  if (!value.empty() && value.back() == '\\') terms.emplace_back();
  return terms;
}

bool character_set_known(const std::vector<std::string>& terms) {
  for (const std::string& t : terms) {
    if (!t.empty() && iconv_name(t) == nullptr && t != "ISO 2022 IR 13" && t != "ISO_IR 13" && t != "ISO 2022 IR 87" &&
        t != "ISO 2022 IR 159") {
      return false;
    }
  }
  return true;
}

std::optional<std::string> decode_text(const std::string& bytes, const std::vector<std::string>& terms,
                                       bool person_name) {
  bool extended = terms.size() > 1;
  for (const std::string& t : terms) extended = extended || t.rfind("ISO 2022", 0) == 0;
  if (extended || bytes.find('\x1B') != std::string::npos) return decode_iso2022(bytes, terms, person_name);
  const std::string term = terms.empty() ? std::string() : terms[0];
  if (term == "ISO_IR 13") {  // JIS X 0201: ASCII-like G0 and half-width katakana in G1
    return decode_iso2022(bytes, {"ISO 2022 IR 13"}, person_name);
  }
  const char* name = term.empty() ? "ASCII" : iconv_name(term);
  if (name == nullptr) return std::nullopt;
  return iconv_utf8(name, bytes);
}

}  // namespace medinfer::dicom::detail
