"""Issue 14's recipes: a frame is exactly what its header says or an error; memory stays within the
limits; untidy but valid files are read (with warnings); text is UTF-8 whatever the character set;
a model input flattened by preprocessing is indeterminate. Files come from the real encoders
(dicom_factory) and pydicom; peak memory is measured with getrusage on a child process."""
import json
import pathlib
import struct
import subprocess
import zlib

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

import dicom_factory as fac
import medinfer

pytestmark = pytest.mark.skipif(not fac.have_tools(), reason="DICOM/JPEG encoders not installed")
MB = 1 << 20


def inspect(cli, *paths):
    r = subprocess.run([cli, "inspect", "--json", *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def one(cli, path):
    return inspect(cli, path)[0]


@pytest.fixture(scope="module")
def baseline_rss(cli, tmp_path_factory):
    small = fac.write_native(tmp_path_factory.mktemp("rss") / "small.dcm", fac.pattern(64, 64, 16))
    return fac.peak_rss([cli, "inspect", "--json", str(small)])[2]


# ---- Found 1: wrong-size codestreams ------------------------------------------------------------

def test_a_32x32_jpeg_lossless_codestream_in_a_64x64_header_is_refused_not_zero_filled(cli, demo_model, tmp_path):
    cs = fac.codestream("jpeg_lossless", fac.pattern(32, 32, 16))
    path = fac.write_encapsulated(tmp_path / "small.dcm", 64, 64, 16, 16, fac.SYNTAX["jpeg_lossless"], [cs],
                                  edit=lambda ds: setattr(ds, "Modality", "CT"))
    j = one(cli, path)
    assert j["error"]["code"] == "kInvalidDicom"
    assert "32 rows x 32 columns" in j["error"]["message"] and "64 x 64" in j["error"]["message"]
    r = subprocess.run([cli, "predict", "--model", demo_model, str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and json.loads(r.stdout)["error"]["code"] == "kInvalidDicom"  # its only input failed


def test_a_jpeg_12_bit_stream_whose_sof_says_8x8_is_refused(cli, demo_model, tmp_path):
    cs = fac.codestream("jpeg_extended", fac.pattern(8, 8, 12), bits_stored=12)
    path = fac.write_encapsulated(tmp_path / "sof8.dcm", 64, 64, 16, 12, fac.SYNTAX["jpeg_extended"], [cs])
    j = one(cli, path)
    assert j["error"]["code"] == "kInvalidDicom" and "8 rows x 8 columns" in j["error"]["message"]
    r = subprocess.run([cli, "predict", "--model", demo_model, str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and "probability" not in r.stdout  # its only input failed


def test_a_128x128_rle_frame_in_a_64x64_header_is_refused_not_cut(cli, tmp_path):
    cs = fac.codestream("rle", fac.pattern(128, 128, 16))
    path = fac.write_encapsulated(tmp_path / "rle.dcm", 64, 64, 16, 16, fac.SYNTAX["rle"], [cs])
    j = one(cli, path)
    assert j["error"]["code"] == "kInvalidDicom" and "beyond the frame's 4096 decoded bytes" in j["error"]["message"]


def test_rle_segments_that_decode_past_the_frame_are_refused(cli, tmp_path):
    cs = bytearray(fac.codestream("rle", fac.pattern(64, 64, 16)))
    # A replicate run of 100 bytes appended to the last segment: pixels beyond the frame.
    cs += bytes([0x9D, 0x07])
    path = fac.write_encapsulated(tmp_path / "rle_past.dcm", 64, 64, 16, 16, fac.SYNTAX["rle"], [bytes(cs)])
    j = one(cli, path)
    assert j["error"]["code"] == "kInvalidDicom" and "beyond the frame" in j["error"]["message"]


def test_a_deflated_frame_inflating_to_300_mib_is_refused_within_bounded_memory(cli, tmp_path, baseline_rss):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(16 * MB)
    stream = b"".join(c.compress(chunk) for _ in range(300 // 16)) + c.compress(bytes(12 * MB)) + c.flush()
    path = fac.write_encapsulated(tmp_path / "bomb.dcm", 64, 64, 16, 16, fac.SYNTAX["deflate_frame"], [stream])
    assert path.stat().st_size < 2 * MB
    rc, out, rss = fac.peak_rss([cli, "inspect", "--json", str(path)])
    j = json.loads(out)
    assert rc == 1 and j["error"]["code"] == "kResourceLimit", j
    assert rss - baseline_rss < 32 * MB, (rss, baseline_rss)


def test_a_truncated_jpeg_2000_codestream_is_refused_not_partly_decoded(cli, tmp_path):
    cs = fac.codestream("j2k", fac.pattern(64, 64, 16))
    path = fac.write_encapsulated(tmp_path / "j2k.dcm", 64, 64, 16, 16, fac.SYNTAX["j2k"], [cs[: len(cs) * 2 // 3]])
    assert one(cli, path)["error"]["code"] == "kInvalidDicom"


# ---- Found 2: memory bounded by the limits ----------------------------------------------------

def _deflated_file(path, payload_bytes, image):
    """A Deflated Explicit VR Little Endian file holding `image` and a private OB element of
    `payload_bytes` zeros, deflated in chunks (the test never holds the inflated dataset)."""
    ds = fac.base_dataset(*image.shape, syntax="1.2.840.10008.1.2.1")
    ds.PixelData = image.tobytes()
    plain = tmp = path.with_suffix(".plain")
    ds.save_as(str(tmp), write_like_original=False)
    raw = tmp.read_bytes()
    meta_end = 132 + 12 + struct.unpack("<I", raw[140:144])[0]
    meta = bytearray(raw[:meta_end])
    body = raw[meta_end:]
    old = b"1.2.840.10008.1.2.1\0"
    new = b"1.2.840.10008.1.2.1.99"
    i = meta.index(old)
    meta[i - 2:i] = struct.pack("<H", len(new))
    meta[i:i + len(old)] = new
    meta[140:144] = struct.pack("<I", len(meta) - 144)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    pixel_at = body.index(b"\xe0\x7f\x10\x00")
    parts = [c.compress(body[:pixel_at]), c.compress(b"\x09\x00\x10\x10OB\0\0" + struct.pack("<I", payload_bytes))]
    chunk = bytes(16 * MB)
    left = payload_bytes
    while left:
        n = min(left, len(chunk))
        parts.append(c.compress(chunk[:n]))
        left -= n
    parts += [c.compress(body[pixel_at:]), c.flush()]
    path.write_bytes(bytes(meta) + b"".join(parts))
    plain.unlink()
    return path


def test_a_deflated_dataset_bomb_above_the_file_limit_is_refused_before_it_is_inflated(cli, tmp_path, baseline_rss):
    image = fac.pattern(64, 64, 16)
    path = _deflated_file(tmp_path / "bomb.dcm", (1 << 30) + 4 * MB, image)  # above max_file_bytes (1 GiB)
    assert path.stat().st_size < 2 * MB
    rc, out, rss = fac.peak_rss([cli, "inspect", "--json", str(path)])
    j = json.loads(out)
    assert rc == 1 and j["error"]["code"] == "kResourceLimit" and "inflates to more than" in j["error"]["message"]
    assert rss - baseline_rss < 32 * MB, (rss, baseline_rss)


def test_a_923_kb_deflated_dataset_costs_its_inflated_size_not_three_times_it(cli, tmp_path, baseline_rss):
    image = fac.pattern(64, 64, 16)
    payload = 900 * MB
    path = _deflated_file(tmp_path / "big.dcm", payload, image)
    assert path.stat().st_size < 1 * MB
    rc, out, rss = fac.peak_rss([cli, "inspect", "--json", str(path)])
    j = json.loads(out)
    assert rc == 0, j
    assert j["stored"]["sha256"] == one(cli, fac.write_native(tmp_path / "plain.dcm", image))["stored"]["sha256"]
    # The inflated dataset (the "file" DCMTK reads) once, plus a small fixed overhead: no copies.
    assert rss - baseline_rss < payload + 64 * MB, (rss / MB, baseline_rss / MB)


def test_a_500_mib_text_element_costs_the_file_once(cli, tmp_path, baseline_rss):
    image = fac.pattern(64, 64, 16)
    plain = fac.write_native(tmp_path / "plain.dcm", image)
    raw = plain.read_bytes()
    pixel_at = raw.index(b"\xe0\x7f\x10\x00")
    size = 500 * MB
    path = tmp_path / "text.dcm"
    with open(path, "wb") as fh:
        fh.write(raw[:pixel_at])
        fh.write(b"\x09\x00\x10\x10UT\0\0" + struct.pack("<I", size))  # private UT (0009,1010)
        chunk = b"A" * (20 * MB)
        for _ in range(size // len(chunk)):
            fh.write(chunk)
        fh.write(raw[pixel_at:])
    assert path.stat().st_size == len(raw) + 12 + size
    rc, out, rss = fac.peak_rss([cli, "inspect", "--json", str(path)])
    j = json.loads(out)
    assert rc == 0 and j["stored"]["sha256"] == one(cli, plain)["stored"]["sha256"]
    assert rss - baseline_rss < size + 64 * MB, (rss / MB, baseline_rss / MB)


# ---- Found 3: untidy but valid files ----------------------------------------------------------

def _untidy(tmp_path, name, edit):
    image = fac.pattern(48, 40, 16)
    clean = fac.write_native(tmp_path / "clean.dcm", image)
    untidy = fac.write_native(tmp_path / name, image, edit=edit)
    return clean, untidy


def _explicit_sequence_bytes():
    """A sequence with one item holding (0010,0010) PN, encoded in explicit VR: what some archives put
    inside a private UN element (the walk must not insist it is implicit VR)."""
    inner = b"\x10\x00\x10\x00PN\x06\x00ABC^D "
    item = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(inner)) + inner
    return item


def test_a_private_un_element_holding_explicit_sequence_bytes_is_kept_as_bytes(cli, tmp_path):
    def edit(ds):
        ds.add_new(0x00090010, "LO", "ACME 1.0")
        ds[0x00091001] = RawDataElement(Tag(0x00091001), "UN", len(_explicit_sequence_bytes()),
                                        _explicit_sequence_bytes(), 0, False, True)
    clean, untidy = _untidy(tmp_path, "un.dcm", edit)
    a, b = inspect(cli, clean, untidy)
    assert "error" not in b, b
    assert b["stored"]["sha256"] == a["stored"]["sha256"]
    assert [w["code"] for w in b["warnings"]] == ["opaque_private_data"] and b["warnings"][0]["tag"] == "(0009,1001)"
    assert pydicom.dcmread(str(untidy)).pixel_array.tobytes() == pydicom.dcmread(str(clean)).pixel_array.tobytes()


def test_pixel_spacing_0_0_is_a_warning_and_the_spacing_gate_refuses_the_image(cli, demo_model, study, tmp_path):
    directory, rows = study
    src = directory / rows[0]["file"]
    ds = pydicom.dcmread(str(src))
    ds.PixelSpacing = [0, 0]
    path = tmp_path / "spacing0.dcm"
    ds.save_as(str(path))
    j = one(cli, path)
    assert "error" not in j, j
    assert j["warnings"][0]["code"] == "invalid_value" and j["warnings"][0]["tag"] == "(0028,0030)"
    _, header = medinfer.dicom.read_instance(str(path))
    assert not header.has_pixel_spacing and header.warnings[0].kind == "invalid_value"
    audit = tmp_path / "audit.jsonl"
    r = subprocess.run([cli, "predict", "--model", demo_model, "--audit-log", audit, str(path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["indeterminate"] and result["rule"] == "quality_gate.pixel_spacing_mm", result
    record = [json.loads(line) for line in audit.read_text().splitlines()][-1]
    assert record["input_warnings"][0]["code"] == "invalid_value" and "<input>" in record["input_warnings"][0]["message"]
    assert str(path) not in audit.read_text()


def test_odd_lengths_and_a_wrong_group_length_are_warnings(cli, tmp_path):
    image = fac.pattern(48, 40, 16)
    clean = fac.write_native(tmp_path / "clean.dcm", image)
    raw = clean.read_bytes()
    at = raw.index(b"\x20\x00\x0d\x00UI")  # StudyInstanceUID: the first element of group 0020
    extra = (b"\x09\x00\x10\x00LO\x04\x00ACME"                       # private creator
             + b"\x09\x00\x02\x10OB\x00\x00" + struct.pack("<I", 3) + b"\x01\x02\x03"  # odd length
             + b"\x20\x00\x00\x00UL\x04\x00" + struct.pack("<I", 9999))  # a wrong Group Length
    untidy = tmp_path / "odd.dcm"
    untidy.write_bytes(raw[:at] + extra + raw[at:])
    a, b = inspect(cli, clean, untidy)
    assert "error" not in b and b["stored"]["sha256"] == a["stored"]["sha256"]
    assert {(w["code"], w["tag"]) for w in b["warnings"]} == {("odd_length", "(0009,1002)"),
                                                             ("group_length", "(0020,0000)")}
    assert pydicom.dcmread(str(untidy)).pixel_array.tobytes() == image.tobytes()


def test_malformed_geometry_is_a_warning_not_a_refusal(cli, tmp_path):
    def edit(ds):
        ds.ImagePositionPatient = ["1", "2"]  # two values where three belong
        ds[0x00200037] = RawDataElement(Tag(0x00200037), "DS", 12, b"x\\0\\0\\0\\1\\0 ", 0, False, True)
    clean, untidy = _untidy(tmp_path, "geometry.dcm", edit)
    a, b = inspect(cli, clean, untidy)
    assert "error" not in b and b["stored"]["sha256"] == a["stored"]["sha256"]
    assert {w["tag"] for w in b["warnings"]} == {"(0020,0032)", "(0020,0037)"}


# ---- Found 4: character sets ------------------------------------------------------------------

CHARSETS = [
    ("ISO_IR 100", "Müller^Jörg", "Ärztliche Aufnahme"),
    ("ISO_IR 101", "Dvořák^Zdeněk", "Vyšetření hrudníku"),
    ("ISO_IR 144", "Иванов^Пётр", "Грудная клетка"),
    ("ISO_IR 192", "Wang^XiaoDong=王^小東", "胸部 CT"),
    ("GB18030", "Wang^XiaoDong=王^小东", "胸部 CT 平扫"),
    ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎", "胸部"),
    ("ISO 2022 IR 13\\ISO 2022 IR 87", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎", "ｷｮｳﾌﾞ"),
]


@pytest.mark.parametrize("charset,name,description", CHARSETS, ids=[c[0] for c in CHARSETS])
def test_header_text_is_utf8_in_every_character_set(charset, name, description, tmp_path):
    def edit(ds):
        ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
        ds.PatientName = name
        ds.SeriesDescription = description
    path = fac.write_native(tmp_path / "cs.dcm", fac.pattern(16, 16, 16), edit=edit)
    header = medinfer.dicom.read_header(str(path))
    assert header.series_description == description
    _, h2 = medinfer.dicom.read_instance(str(path))
    assert h2.series_description == description and not h2.warnings
    assert medinfer.dicom.read_patient_identifiers(str(path))["patient_name"] == name


def test_bytes_the_character_set_cannot_decode_are_replaced_never_raised(cli, tmp_path):
    def edit(ds):
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SeriesDescription = "abXYcd"
    path = fac.write_native(tmp_path / "bad.dcm", fac.pattern(16, 16, 16), edit=edit)
    path.write_bytes(path.read_bytes().replace(b"abXYcd", b"ab\xff\xfecd"))  # not UTF-8
    header = medinfer.dicom.read_header(str(path))
    assert header.series_description == "ab\ufffd\ufffdcd"
    assert header.warnings[0].kind == "character_set"
    j = one(cli, path)
    assert "error" not in j and j["warnings"][0]["tag"] == "(0008,103E)"


def test_an_error_message_quoting_undecodable_bytes_is_a_medinfer_error_in_python(tmp_path):
    def edit(ds):
        ds[0x00280004] = RawDataElement(Tag(0x00280004), "CS", 6, b"MONO\xd0\xff", 0, False, True)
    path = fac.write_native(tmp_path / "photo.dcm", fac.pattern(16, 16, 16), edit=edit)
    with pytest.raises(medinfer.MedinferError) as e:
        medinfer.dicom.read_instance(str(path))
    assert e.value.code in ("kUnsupported", "kInvalidDicom")


# ---- Found 5: constant after preprocessing ----------------------------------------------------

def test_a_slope_of_minus_one_that_windowing_flattens_is_input_constant(cli, demo_model, study, tmp_path):
    directory, rows = study
    ds = pydicom.dcmread(str(directory / rows[0]["file"]))
    ds.RescaleSlope, ds.RescaleIntercept = -1, -5000  # every HU far below the demo's [-160, 240] window
    path = tmp_path / "negative_slope.dcm"
    ds.save_as(str(path))
    image, _ = medinfer.dicom.read_instance(str(path))
    assert image.max() > image.min()  # the raw pixels are not constant
    r = subprocess.run([cli, "predict", "--model", demo_model, str(path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["indeterminate"] and result["rule"] == "input_constant", result


# ---- Deliver 8: HTJ2K from OpenJPH's encoder, every bit depth, lossless ---------------------------

# Signed 12-bit and RGB are left out: OpenJPH 0.9's own encoder does not round-trip them through its
# own expander (ojph_compress reads signed sub-16-bit raw input and PPM wrongly; measured), so no
# trustworthy HTJ2K source exists for them here.
@pytest.mark.parametrize("bits,signed", [(2, False), (8, False), (8, True), (10, False), (12, False),
                                         (14, False), (16, False), (16, True)])
def test_htj2k_from_openjph_decodes_lossless_at_every_bit_depth(bits, signed, tmp_path):
    rng = np.random.default_rng(bits)
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2 ** bits)
    dtype = (np.int8 if signed else np.uint8) if bits <= 8 else (np.int16 if signed else np.uint16)
    image = rng.integers(lo, hi, size=(24, 20)).astype(dtype)
    cs = fac.htj2k_codestream(image, bits, signed)
    ba = 8 if bits <= 8 else 16
    path = fac.write_encapsulated(tmp_path / "ht.dcm", 24, 20, ba, bits, fac.SYNTAX["htj2k"], [cs],
                                  edit=lambda ds: setattr(ds, "PixelRepresentation", 1 if signed else 0))
    if signed:  # OpenJPEG 2.5.0 clamps negative HTJ2K samples: refused, never returned wrong
        with pytest.raises(medinfer.UnsupportedError, match="signed HTJ2K"):
            medinfer.dicom.read_stored_pixels(str(path))
        return
    stored, _ = medinfer.dicom.read_stored_pixels(str(path))
    np.testing.assert_array_equal(stored[0, :, :, 0], image)


def test_an_htj2k_codestream_that_aborts_openjpeg_is_an_error_not_an_abort(cli):
    # Found by the DICOM fuzzer: OpenJPEG 2.5.0 (built with assertions) aborts in mel_init; the
    # reader decodes HTJ2K in a forked child, so the host gets kInvalidDicom and nothing on stderr.
    path = pathlib.Path(__file__).parents[1] / "fuzz" / "regressions" / "htj2k_openjpeg_mel_assert.dcm"
    r = subprocess.run([cli, "inspect", "--json", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr == ""
    j = json.loads(r.stdout)
    assert j["error"]["code"] == "kInvalidDicom" and "died on this codestream" in j["error"]["message"]
    with pytest.raises(medinfer.InvalidDicomError):
        medinfer.dicom.read_stored_pixels(str(path))
