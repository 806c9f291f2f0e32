"""Builds DICOM test files: native images with pydicom, codestreams from the real encoders (DCMTK's
dcmcjpeg/dcmcjpls/dcmcrle, OpenJPEG's opj_compress, OpenJPH's ojph_compress, zlib), and encapsulated
files whose header and codestream are chosen separately (to make them disagree on purpose)."""
import os
import pathlib
import shutil
import struct
import subprocess
import tempfile
import zlib

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_pixel_data_frame
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SYNTAX = {
    "jpeg_baseline": "1.2.840.10008.1.2.4.50",
    "jpeg_extended": "1.2.840.10008.1.2.4.51",
    "jpeg_lossless": "1.2.840.10008.1.2.4.70",
    "jpegls": "1.2.840.10008.1.2.4.80",
    "j2k": "1.2.840.10008.1.2.4.90",
    "htj2k": "1.2.840.10008.1.2.4.201",
    "rle": "1.2.840.10008.1.2.5",
    "deflate_frame": "1.2.840.10008.1.2.8.1",
}
# The bit depths each codec is exercised with (what its encoder here writes).
CODEC_BITS = {
    "jpeg_baseline": 8, "jpeg_extended": 12, "jpeg_lossless": 16, "jpegls": 16, "j2k": 16, "htj2k": 16,
    "rle": 16, "deflate_frame": 16,
}


def pattern(rows, cols, bits, seed=0):
    """A smooth image with some noise, in [0, 2**bits)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    top = 2 ** bits - 1
    v = 0.5 + 0.35 * np.sin(x / 5.0 + seed) * np.cos(y / 4.0)
    v = np.clip(np.round(v * top) + rng.integers(-2, 3, size=v.shape), 0, top)
    return v.astype(np.uint16 if bits > 8 else np.uint8)


def base_dataset(rows, cols, bits_allocated=16, bits_stored=None, signed=False, syntax=ExplicitVRLittleEndian,
                 samples=1):
    bits_stored = bits_stored or bits_allocated
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if samples > 1:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits_allocated, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.is_little_endian = True
    ds.is_implicit_VR = syntax == "1.2.840.10008.1.2"
    return ds


def write_native(path, array, bits_stored=None, signed=False, syntax=ExplicitVRLittleEndian, edit=None):
    rows, cols = array.shape[:2]
    samples = 1 if array.ndim == 2 else array.shape[2]
    ds = base_dataset(rows, cols, array.dtype.itemsize * 8, bits_stored, signed, syntax, samples)
    ds.PixelData = array.tobytes()
    if edit:
        edit(ds)
    # As written: pydicom would otherwise drop group lengths and fix what the tests break on purpose.
    ds.save_as(str(path), write_like_original=True)
    return path


def set_transfer_syntax(path, uid):
    """Rewrites the File Meta's Transfer Syntax UID of a written file (for UIDs pydicom 2.3 does not
    know), fixing the meta group's length."""
    raw = bytearray(pathlib.Path(path).read_bytes())
    assert raw[128:132] == b"DICM"
    pos = 132
    out = bytearray(raw[:pos])
    group_length_at = None
    while struct.unpack("<H", raw[pos:pos + 2])[0] == 0x0002:
        element = struct.unpack("<H", raw[pos + 2:pos + 4])[0]
        vr = bytes(raw[pos + 4:pos + 6])
        if vr in (b"OB", b"UN", b"SQ", b"UT", b"OW"):
            length, header = struct.unpack("<I", raw[pos + 8:pos + 12])[0], 12
        else:
            length, header = struct.unpack("<H", raw[pos + 6:pos + 8])[0], 8
        if element == 0x0000:
            group_length_at = len(out) + 8
        if element == 0x0010:
            value = uid.encode() + (b"\0" if len(uid) % 2 else b"")
            out += raw[pos:pos + 6] + struct.pack("<H", len(value)) + value
        else:
            out += raw[pos:pos + header + length]
        pos += header + length
    if group_length_at is not None:
        out[group_length_at:group_length_at + 4] = struct.pack("<I", len(out) - group_length_at - 4)
    pathlib.Path(path).write_bytes(bytes(out) + bytes(raw[pos:]))
    return path


def write_encapsulated(path, rows, cols, bits_allocated, bits_stored, syntax, frames, samples=1, edit=None):
    # pydicom 2.3 refuses to write syntaxes it does not know: write as RLE, then set the real UID.
    meta_syntax = syntax if syntax not in (SYNTAX["deflate_frame"], SYNTAX["htj2k"]) and \
        not syntax.startswith("1.2.840.10008.1.2.4.20") else SYNTAX["rle"]
    ds = base_dataset(rows, cols, bits_allocated, bits_stored, False, meta_syntax, samples)
    if syntax == SYNTAX["jpeg_baseline"] and samples == 3:
        ds.PhotometricInterpretation = "YBR_FULL_422"
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = encapsulate(list(frames))
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    if edit:
        edit(ds)
    ds.save_as(str(path), write_like_original=True)
    if meta_syntax != syntax:
        set_transfer_syntax(path, syntax)
    return path


def _pgm(path, array):
    h, w = array.shape
    maxval = 255 if array.dtype == np.uint8 else 65535
    data = array.astype(">u2").tobytes() if maxval > 255 else array.tobytes()
    pathlib.Path(path).write_bytes(f"P5\n{w} {h}\n{maxval}\n".encode() + data)


def codestream(codec, array, bits_stored=None):
    """One frame of `array` (2-D) encoded by the real encoder of `codec`."""
    bits = bits_stored or array.dtype.itemsize * 8
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        if codec == "deflate_frame":
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            return c.compress(array.tobytes()) + c.flush()
        if codec in ("j2k", "htj2k"):
            pgm = tmp / "in.pgm"
            if bits not in (8, 16):  # the PGM maxval carries the depth
                h, w = array.shape
                pgm.write_bytes(f"P5\n{w} {h}\n{2 ** bits - 1}\n".encode() + array.astype(">u2").tobytes())
            else:
                _pgm(pgm, array)
            out = tmp / ("out.j2k" if codec == "j2k" else "out.j2c")
            levels = str(max(1, min(6, int(np.log2(min(array.shape))))))  # small images: fewer levels
            cmd = ["opj_compress", "-i", str(pgm), "-o", str(out), "-n", levels] if codec == "j2k" else \
                ["ojph_compress", "-i", str(pgm), "-o", str(out), "-reversible", "true"]
            subprocess.run(cmd, check=True, capture_output=True)
            return out.read_bytes()
        src = write_native(tmp / "in.dcm", array, bits_stored=bits)
        out = tmp / "out.dcm"
        tool = {"jpeg_baseline": ["dcmcjpeg", "+eb"], "jpeg_extended": ["dcmcjpeg", "+ee"],
                "jpeg_lossless": ["dcmcjpeg", "+e1"], "jpegls": ["dcmcjpls"], "rle": ["dcmcrle"]}[codec]
        subprocess.run([*tool, str(src), str(out)], check=True, capture_output=True)
        ds = pydicom.dcmread(str(out))
        return next(generate_pixel_data_frame(ds.PixelData))


def htj2k_codestream(array, bits, signed=False):
    """HTJ2K (lossless) of a 2-D array (or rows x columns x 3 RGB, 8-bit) by OpenJPH's ojph_compress."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        out = tmp / "out.j2c"
        if array.ndim == 3:
            h, w, _ = array.shape
            src = tmp / "in.ppm"
            src.write_bytes(f"P6\n{w} {h}\n255\n".encode() + array.astype(np.uint8).tobytes())
            cmd = ["ojph_compress", "-i", str(src), "-o", str(out), "-reversible", "true"]
        else:
            h, w = array.shape
            src = tmp / "in.rawl"
            src.write_bytes(array.astype("<i2" if signed else "<u2").tobytes() if bits > 8 else
                            array.astype(np.int8 if signed else np.uint8).tobytes())
            cmd = ["ojph_compress", "-i", str(src), "-o", str(out), "-dims", f"{{{w},{h}}}", "-num_comps", "1",
                   "-signed", "true" if signed else "false", "-bit_depth", str(bits), "-downsamp", "{1,1}",
                   "-reversible", "true"]
        subprocess.run(cmd, check=True, capture_output=True)
        return out.read_bytes()


def peak_rss(cmd):
    """(exit status, stdout, peak resident memory in bytes) of `cmd` run as a child: getrusage of that
    child alone (wait4), not of every child this process has reaped."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out.decode(errors="replace"), usage.ru_maxrss * 1024


def have_tools():
    return all(shutil.which(t) for t in ("dcmcjpeg", "dcmcjpls", "dcmcrle", "opj_compress", "ojph_compress"))
