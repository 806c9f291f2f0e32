#!/usr/bin/python3
"""Benchmark inputs for DICOM decoding: one 512 x 512 CT slice (a smooth synthetic phantom with noise,
int16, 12 bits stored) in every transfer syntax, and a 300-slice series of such slices.

DCMTK's command-line encoders write the JPEG, JPEG-LS, RLE and uncompressed variants; opj_compress
writes the JPEG 2000 codestreams and zlib the Deflated Image Frame Compression frame, wrapped by
pydicom. Deterministic (seeded).

    /usr/bin/python3 benchmarks/compare/make_dicom_bench_data.py --out DIR [--slices 300]
"""
import argparse
import os
import subprocess
import zlib

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def phantom(z, rng):
    y, x = np.mgrid[-256:256, -256:256].astype(np.float32)
    body = (x / 220.0) ** 2 + (y / 180.0) ** 2 < 1.0
    img = np.where(body, 40.0, -1000.0)
    img += np.where((x - 60) ** 2 + (y + 20 - z * 0.2) ** 2 < 900, 300.0, 0.0)
    img += np.where(body, rng.normal(0, 12, img.shape), 0.0)
    return (np.clip(img + 1024, 0, 4095)).astype(np.int16)


def write(path, pixels, z, series_uid, study_uid, instance, syntax=ExplicitVRLittleEndian, pixel_data=None):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.Modality, ds.PatientName, ds.PatientID = "CT", "BENCH^MARK", "BENCH"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [-128.0, -128.0, float(z)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1.0
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    if pixel_data is None:
        ds.PixelData = pixels.tobytes()
    else:
        ds.PixelData = pixel_data
        ds["PixelData"].VR = "OB"
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(path, write_like_original=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--slices", type=int, default=300)
    args = ap.parse_args()
    rng = np.random.default_rng(3)
    syn = os.path.join(args.out, "syntaxes")
    ser = os.path.join(args.out, "series")
    os.makedirs(syn, exist_ok=True)
    os.makedirs(ser, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    px = phantom(0, rng)
    src = os.path.join(syn, "explicit_le.dcm")
    write(src, px, 0, series, study, 1)
    tools = {
        "implicit_le.dcm": ["dcmconv", "+ti"], "explicit_be.dcm": ["dcmconv", "+tb"],
        "deflated.dcm": ["dcmconv", "+td"], "jpeg_lossless_sv1.dcm": ["dcmcjpeg", "+e1"],
        "jpeg_lossless_p14.dcm": ["dcmcjpeg", "+el"], "jpeg_extended_12bit.dcm": ["dcmcjpeg", "+ee"],
        "jpegls_lossless.dcm": ["dcmcjpls", "+el"], "rle.dcm": ["dcmcrle"],
    }
    for name, cmd in tools.items():
        subprocess.run(cmd + [src, os.path.join(syn, name)], check=True)
    # dcmcjpls refuses signed near-lossless input: an unsigned copy for that one.
    raw = os.path.join(args.out, "slice.rawl")
    px.astype("<u2").tofile(raw)
    for lossy, uid, name in ((False, "1.2.840.10008.1.2.4.90", "j2k_lossless.dcm"),
                             (True, "1.2.840.10008.1.2.4.91", "j2k_lossy.dcm")):
        j2k = os.path.join(args.out, "slice.j2k")
        subprocess.run(["opj_compress", "-i", raw, "-o", j2k, "-F", "512,512,1,12,u"] + (["-r", "10"] if lossy else []),
                       check=True, capture_output=True)
        write(os.path.join(syn, name), px, 0, series, study, 1, uid, encapsulate([open(j2k, "rb").read()]))
    # HTJ2K (OpenJPH's encoder): written under MPEG2's UID, which pads to the same length (pydicom 2.3
    # does not know 1.2.840.10008.1.2.4.201), then patched. The bare codestream is kept for the
    # OpenJPH-vs-OpenJPEG decoder comparison.
    htj2k = os.path.join(args.out, "slice.j2c")
    subprocess.run(["ojph_compress", "-i", raw, "-o", htj2k, "-dims", "{512,512}", "-num_comps", "1", "-signed",
                    "false", "-bit_depth", "12", "-downsamp", "{1,1}", "-reversible", "true"], check=True,
                   capture_output=True)
    hts = os.path.join(syn, "htj2k_lossless.dcm")
    write(hts, px, 0, series, study, 1, "1.2.840.10008.1.2.4.100", encapsulate([open(htj2k, "rb").read()]))
    data = open(hts, "rb").read().replace(b"1.2.840.10008.1.2.4.100\0", b"1.2.840.10008.1.2.4.201\0", 1)
    open(hts, "wb").write(data)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    frame = comp.compress(px.tobytes()) + comp.flush()
    # pydicom 2.3 does not know 1.2.840.10008.1.2.8.1 (2024): write under the JPEG 2000 UID, which
    # pads to the same length, then patch the File Meta.
    dfl = os.path.join(syn, "deflate_frame.dcm")
    write(dfl, px, 0, series, study, 1, "1.2.840.10008.1.2.4.90", encapsulate([frame]))
    data = open(dfl, "rb").read()
    data = data.replace(b"1.2.840.10008.1.2.4.90", b"1.2.840.10008.1.2.8.1\0", 1)
    open(dfl, "wb").write(data)
    order = rng.permutation(args.slices)
    for i, k in enumerate(order):
        write(os.path.join(ser, f"s{i:04d}.dcm"), phantom(k, rng), 2.0 * k, series, study, int(k) + 1)
    os.remove(raw)


if __name__ == "__main__":
    main()
