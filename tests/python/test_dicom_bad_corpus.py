"""A generated corpus of bad (and untidy but valid) DICOM files, each with its exact expected outcome:
truncation at every element boundary, wrong lengths, wrong-size / truncated / padded / over-long
codestreams of every codec, bombs, huge dimensions, odd lengths, nested sequences, bogus transfer
syntaxes. All are read in one child process, which reports each file's outcome and time; the
parent measures the child's peak resident memory (getrusage)."""
import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

import dicom_factory as fac
from conftest import BUILD

pytestmark = pytest.mark.skipif(not fac.have_tools(), reason="DICOM/JPEG encoders not installed")
MB = 1 << 20
LOSSY = ("jpeg_baseline", "jpeg_extended")


def sha(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


LONG_VRS = (b"OB", b"OW", b"SQ", b"UN", b"UT", b"OF", b"OD", b"UC", b"UR", b"OL", b"OV")


def boundaries(raw, start=132):
    """Offsets of every element and item start in an explicit VR little endian file (recursing into
    sequences, items and encapsulated Pixel Data)."""
    out = []

    def item_tag(pos):
        return struct.unpack("<HHI", raw[pos:pos + 8])

    def dataset(pos, end, delimited):
        while pos < end:
            out.append(pos)
            group, element = struct.unpack("<HH", raw[pos:pos + 4])
            if group == 0xFFFE and element == 0xE00D and delimited:
                return pos + 8
            vr = raw[pos + 4:pos + 6]
            if vr in LONG_VRS:
                length, value = struct.unpack("<I", raw[pos + 8:pos + 12])[0], pos + 12
            else:
                length, value = struct.unpack("<H", raw[pos + 6:pos + 8])[0], pos + 8
            if length == 0xFFFFFFFF:
                pos = items(value, end, pixel=(group, element) == (0x7FE0, 0x0010), delimited=True)
            else:
                if vr == b"SQ":
                    items(value, value + length, pixel=False, delimited=False)
                pos = value + length
        return pos

    def items(pos, end, pixel, delimited):
        while pos < end:
            out.append(pos)
            _, element, length = item_tag(pos)
            if element == 0xE0DD:
                return pos + 8
            if length == 0xFFFFFFFF:
                pos = dataset(pos + 8, end, delimited=True)
            else:
                if not pixel:
                    dataset(pos + 8, pos + 8 + length, delimited=False)
                pos = pos + 8 + length
        return pos

    dataset(start, len(raw), False)
    return sorted(set(out))


def base_file(path, image):
    def edit(ds):
        item = Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.ReferencedSOPInstanceUID = "1.2.3.4.5"
        ds.ReferencedImageSequence = [item]
        ds.PixelSpacing = [0.5, 0.5]
        ds.SeriesDescription = "base"
    return fac.write_native(path, image, edit=edit)


def build_corpus(root):
    """[(name, path, expected)]: expected is {"code": C, "contains": S} or {"sha256": H} (exact
    decode) or {"reference": pydicom's decode, "tolerance": 1} for lossy codecs, with optional
    "warnings"."""
    cases = []

    def add(name, data, expected):
        path = root / f"{len(cases):03d}_{name}.dcm"
        if isinstance(data, (bytes, bytearray)):
            path.write_bytes(bytes(data))
        else:
            os.replace(data, path)
        cases.append((name, str(path), expected))

    bad = lambda contains=None: {"code": "kInvalidDicom", "contains": contains}  # noqa: E731

    # A. Truncation at every element boundary (and inside each element header) of a native file.
    image = fac.pattern(16, 12, 16, seed=3)
    base = base_file(root / "base.dcm", image)
    raw = base.read_bytes()
    cases.append(("native_whole", str(base), {"sha256": sha(image)}))
    for b in boundaries(raw):
        add(f"truncated_at_{b}", raw[:b], bad())
        add(f"truncated_at_{b}_plus_5", raw[:b + 5], bad())
    for cut in (0, 1, 64, 128, 131):
        add(f"truncated_preamble_{cut}", raw[:cut], bad())

    # B. Every top-level element's length made longer than what remains.
    for b in boundaries(raw):
        group = struct.unpack("<H", raw[b:b + 2])[0]
        if group in (0x0002, 0xFFFE):
            continue
        vr = raw[b + 4:b + 6]
        data = bytearray(raw)
        if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
            data[b + 8:b + 12] = struct.pack("<I", len(raw) - b)
        else:
            if len(raw) - b - 8 > 0xFFFF:
                continue
            data[b + 6:b + 8] = struct.pack("<H", min(0xFFFE, len(raw) - b))
        add(f"long_length_at_{b}", data, bad())

    # C. Every codec: valid, padded, wrong sizes, truncated, over-long, too many bits.
    for codec, bits in fac.CODEC_BITS.items():
        syntax = fac.SYNTAX[codec]
        ba = 8 if bits == 8 else 16
        src = fac.pattern(32, 40, bits, seed=5)
        cs = fac.codestream(codec, src, bits)
        enc = lambda name, frames, rows=32, cols=40, ba=ba, bs=bits: fac.write_encapsulated(  # noqa: E731
            root / f"tmp_{codec}_{name}.dcm", rows, cols, ba, bs, syntax, frames)
        if codec in LOSSY:  # DCMTK's lossy encoder rescales the values: the reference is pydicom's decode
            reference = pydicom.dcmread(str(enc("ref", [cs]))).pixel_array
            exact = {"reference": reference.astype(np.float64).ravel().tolist(), "tolerance": 1}
        else:
            exact = {"sha256": sha(src)}
        add(f"{codec}_valid", enc("valid", [cs]), exact)
        if codec != "rle":  # an RLE segment may carry one padding byte only (PS3.5 G.3.1)
            add(f"{codec}_zero_padded", enc("pad", [cs + b"\0\0"]), exact)
        too_big = bad() if codec != "deflate_frame" else {"code": "kResourceLimit", "contains": "inflates to more"}
        for rows, cols in ((16, 40), (32, 20), (31, 40), (32, 39)):
            add(f"{codec}_header_{rows}x{cols}", enc(f"h{rows}x{cols}", [cs], rows, cols), too_big)
        for rows, cols in ((64, 40), (32, 80), (33, 40)):
            add(f"{codec}_header_{rows}x{cols}", enc(f"h{rows}x{cols}", [cs], rows, cols), bad())
        for frac in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95):
            add(f"{codec}_truncated_{int(frac * 100)}", enc(f"t{frac}", [cs[: int(len(cs) * frac) & ~1]]), bad())
        add(f"{codec}_truncated_by_2", enc("t2", [cs[:-2]]), bad())
        add(f"{codec}_trailing_data", enc("trail", [cs + b"GARBAGE!"]), bad())
        if codec not in ("rle", "deflate_frame", "jpeg_baseline"):
            add(f"{codec}_precision_above_bits_allocated", enc("ba8", [cs], ba=8, bs=8), bad("BitsAllocated"))
        add(f"{codec}_two_frames", enc("nf", [cs, cs]), exact)
        if codec in ("j2k", "htj2k"):  # SIZ values the standard forbids (OpenJPH 0.9 divided by zero)
            for field, at, value, says in (("tile_height_0", 28, b"\0\0\0\0", "tile size"),
                                           ("tile_width_0", 24, b"\0\0\0\0", "tile size"),
                                           ("tile_offset_past_image", 32, b"\x10\0\0\0", "tile size"),
                                           ("subsampling_0", 43, b"\0", "subsampling"),
                                           ("components_0", 40, b"\0\0", "components")):
                patched = bytearray(cs)
                patched[at:at + len(value)] = value
                add(f"{codec}_siz_{field}", enc(f"siz_{field}", [bytes(patched)]), bad(says))
            # HT code-blocks selected in COD without a CAP marker (a classic codestream's blocks then
            # go through OpenJPEG's HTJ2K decoder, which can abort): decoded in the child, refused.
            cod = cs.index(b"\xff\x52", 4)
            patched = bytearray(cs)
            patched[cod + 12] |= 0x40
            if codec == "j2k":
                add("j2k_cod_selects_ht_blocks", enc("cod_ht", [bytes(patched)]), bad())

    # C'. Truncation at every element, item and fragment boundary of a two-frame JPEG-LS file.
    src = fac.pattern(32, 40, 16, seed=6)
    cs = fac.codestream("jpegls", src)
    two = fac.write_encapsulated(root / "tmp_two.dcm", 32, 40, 16, 16, fac.SYNTAX["jpegls"], [cs[:100], cs[100:], cs],
                                 edit=lambda ds: setattr(ds, "NumberOfFrames", 2)).read_bytes()
    add("jpegls_fragmented_whole", two, {"sha256": sha(src)})
    for b in boundaries(two):
        add(f"jpegls_truncated_at_{b}", two[:b], bad())
        add(f"jpegls_truncated_at_{b}_plus_6", two[:b + 6], bad())

    # D. A deflated-frame bomb (64 MiB of zeros in a 32 x 40 header).
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = c.compress(bytes(64 * MB)) + c.flush()
    add("deflate_frame_bomb", fac.write_encapsulated(root / "tmp_bomb.dcm", 32, 40, 16, 16,
                                                     fac.SYNTAX["deflate_frame"], [bomb]),
        {"code": "kResourceLimit", "contains": "inflates to more"})

    # E. Huge dimensions and frame counts (refused before any allocation).
    small = fac.pattern(4, 4, 16)
    for name, edit in (
            ("rows_65535", lambda ds: setattr(ds, "Rows", 65535)),
            ("columns_65535", lambda ds: setattr(ds, "Columns", 65535)),
            ("frames_100000", lambda ds: setattr(ds, "NumberOfFrames", 100000)),
            ("pixel_bytes_above_limit", lambda ds: (setattr(ds, "Rows", 16384), setattr(ds, "Columns", 16384),
                                                    setattr(ds, "NumberOfFrames", 9), setattr(ds, "BitsAllocated", 32),
                                                    setattr(ds, "BitsStored", 32), setattr(ds, "HighBit", 31)))):
        add(name, fac.write_native(root / f"tmp_{name}.dcm", small, edit=edit), {"code": "kResourceLimit"})
    add("rows_zero", fac.write_native(root / "tmp_rows0.dcm", small, edit=lambda ds: setattr(ds, "Rows", 0)), bad())
    add("frames_zero", fac.write_native(root / "tmp_f0.dcm", small, edit=lambda ds: setattr(ds, "NumberOfFrames", 0)),
        bad("not a positive integer"))
    add("frames_more_than_data", fac.write_native(root / "tmp_f2.dcm", small,
                                                  edit=lambda ds: setattr(ds, "NumberOfFrames", 2)), bad("truncated"))

    # F. Odd lengths (a private OB of 1, 3, 5, ... bytes): untidy, the pixels as they are.
    at = raw.index(b"\x20\x00\x0d\x00UI")
    for n in (1, 3, 5, 7, 9, 11, 101, 1001):
        extra = (b"\x09\x00\x10\x00LO\x04\x00ACME" + b"\x09\x00\x02\x10OB\x00\x00" + struct.pack("<I", n)
                 + bytes(range(n % 256))[:n].ljust(n, b"x"))
        add(f"odd_length_{n}", raw[:at] + extra + raw[at:], {"sha256": sha(image), "warnings": ["odd_length"]})
    for claimed in (0, 2, 9999, 0xFFFFFFF0):
        extra = b"\x20\x00\x00\x00UL\x04\x00" + struct.pack("<I", claimed)
        add(f"group_length_{claimed}", raw[:at] + extra + raw[at:], {"sha256": sha(image), "warnings": ["group_length"]})

    # G. Nested sequences: deep but legal, too deep, and broken delimiters.
    def nested(depth, undefined=True):
        inner = b"\x08\x00\x00\x01SH\x04\x00CODE"
        for _ in range(depth):
            if undefined:
                item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + inner + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
                inner = b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + item + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
            else:
                item = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(inner)) + inner
                inner = b"\x08\x00\x15\x11SQ\x00\x00" + struct.pack("<I", len(item)) + item
        return inner
    seq_at = raw.index(b"\x08\x00\x40\x11SQ")  # ReferencedImageSequence: replace it
    seq_len = struct.unpack("<I", raw[seq_at + 8:seq_at + 12])[0]
    seq_end = seq_at + 12 + seq_len
    for depth in (1, 5, 20, 40, 47):
        for undefined in (True, False):
            add(f"nested_{depth}_{'undefined' if undefined else 'defined'}",
                raw[:seq_at] + nested(depth, undefined) + raw[seq_end:], {"sha256": sha(image)})
    for depth in (49, 100, 1000):
        add(f"nested_{depth}_too_deep", raw[:seq_at] + nested(depth) + raw[seq_end:], bad("nested deeper"))
    broken = nested(3)
    add("sequence_without_delimiter", raw[:seq_at] + broken[:-8] + raw[seq_end:], bad())
    add("item_without_delimiter", raw[:seq_at] + broken.replace(b"\xfe\xff\x0d\xe0\x00\x00\x00\x00", b"", 1)
        + raw[seq_end:], bad())
    defined = bytearray(nested(2, False))
    first_item = defined.index(b"\xfe\xff\x00\xe0")
    defined[first_item + 4:first_item + 8] = struct.pack("<I", 0x7FFFFFF0)
    add("item_length_past_sequence", raw[:seq_at] + bytes(defined) + raw[seq_end:], bad())

    # H. Bogus transfer syntaxes.
    for uid, outcome in (("1.2.3.4", {"code": "kUnsupported", "contains": "unknown transfer syntax"}),
                         ("1.2.840.10008.1.2.4.100", {"code": "kUnsupported", "contains": "MPEG2"}),
                         ("1.2.840.10008.1.2.4.107", {"code": "kUnsupported", "contains": "HEVC"}),
                         ("1.2.840.10008.1.2.4.110", {"code": "kUnsupported", "contains": "JPEG XL"}),
                         ("1.2.840.10008.1.2.4.92", {"code": "kUnsupported"}),
                         ("1.2.840.10008.1.2.4.50", bad("needs encapsulated")),
                         ("1.2.840.10008.1.2.5", bad("needs encapsulated")),
                         ("1.2.840.10008.1.2.4.201", bad("needs encapsulated"))):
        p = fac.write_native(root / f"tmp_ts_{uid}.dcm", image)
        add(f"syntax_{uid}", fac.set_transfer_syntax(p, uid).read_bytes(), outcome)
    rle = fac.codestream("rle", image)
    p = fac.write_encapsulated(root / "tmp_enc_native.dcm", 16, 12, 16, 16, fac.SYNTAX["rle"], [rle])
    add("encapsulated_under_native_syntax", fac.set_transfer_syntax(p, "1.2.840.10008.1.2.1").read_bytes(),
        bad("is encapsulated"))
    add("rle_valid_small", fac.write_encapsulated(root / "tmp_rle_small.dcm", 16, 12, 16, 16, fac.SYNTAX["rle"], [rle]),
        {"sha256": sha(image)})
    return cases


RUNNER = textwrap.dedent("""
    import json, sys, time, hashlib
    sys.path.insert(0, sys.argv[1])
    import medinfer, numpy as np
    out = []
    for path in sys.argv[2:]:
        t = time.perf_counter()
        try:
            stored, _ = medinfer.dicom.read_stored_pixels(path)
            header = medinfer.dicom.read_header(path)
            arr = stored[0, :, :, 0] if stored.shape[3] == 1 else stored[0]
            res = {"sha256": hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest(),
                   "frames": int(stored.shape[0]), "warnings": [w.kind for w in header.warnings],
                   "array": arr.astype(np.float64).ravel().tolist() if arr.size <= 4096 else None}
        except medinfer.MedinferError as e:
            res = {"code": e.code, "message": str(e)}
        except Exception as e:  # anything else is a defect the test reports
            res = {"crash": type(e).__name__ + ": " + str(e)}
        res["seconds"] = time.perf_counter() - t
        out.append(res)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_corpus")
    cases = build_corpus(root)
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(BUILD / "bindings" / "python"),
                           *[p for _, p, _ in cases]], capture_output=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return cases, json.loads(proc.stdout)


def test_the_corpus_has_at_least_300_files(corpus):
    cases, _ = corpus
    assert len(cases) >= 300, len(cases)


def test_every_file_ends_in_its_exact_outcome_within_5_seconds(corpus):
    cases, results = corpus
    wrong = []
    for (name, path, expected), got in zip(cases, results):
        if "crash" in got:
            wrong.append(f"{name}: not a medinfer error: {got['crash']}")
            continue
        assert got["seconds"] < 5.0, (name, got["seconds"])  # a hang guard, not a speed test
        if "code" in expected:
            if got.get("code") != expected["code"] or (expected.get("contains") and
                                                       expected["contains"] not in got.get("message", "")):
                wrong.append(f"{name}: expected {expected}, got {got.get('code')}: {got.get('message', got.get('sha256'))}")
            continue
        if "code" in got:
            wrong.append(f"{name}: expected a decode, got {got['code']}: {got['message']}")
            continue
        if "sha256" in expected and got["sha256"] != expected["sha256"]:
            wrong.append(f"{name}: decoded to other pixels")
        if "reference" in expected:
            err = np.max(np.abs(np.asarray(got["array"]) - np.asarray(expected["reference"])))
            if err > expected["tolerance"]:
                wrong.append(f"{name}: lossy decode differs from pydicom's by {err}")
        if sorted(set(got["warnings"])) != sorted(expected.get("warnings", [])):
            wrong.append(f"{name}: warnings {got['warnings']}, expected {expected.get('warnings', [])}")
    assert not wrong, "\n".join(wrong)


def test_reading_the_whole_corpus_stays_within_bounded_memory(corpus, tmp_path):
    cases, _ = corpus
    paths = [p for _, p, _ in cases]
    runner = [sys.executable, "-c", RUNNER, str(BUILD / "bindings" / "python")]
    baseline = fac.peak_rss(runner + paths[:1])[2]
    peak = fac.peak_rss(runner + paths)[2]
    # The largest legitimate need here is the 64 MiB bomb's own frame check (one frame of memory) and
    # the file bytes: tens of MB over the interpreter, never the decoded sizes the headers claim.
    assert peak - baseline < 64 * MB, (peak / MB, baseline / MB)
