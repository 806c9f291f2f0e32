#!/usr/bin/python3
"""Writes a sample study of synthetic CT slices as DICOM Part-10 files, plus truth.csv and labels.csv.

    /usr/bin/python3 scripts/make_sample_study.py --out DIR [--count N] [--seed S] [--no-obvious]

Deterministic (fixed seed, UIDs derived from it). The first cases are obvious (a large, bright
lesion, or none), the rest are drawn from the training distribution. CT Image Storage, Explicit VR
Little Endian, signed 16-bit stored values with RescaleSlope 1 and RescaleIntercept -1024, and a
synthetic patient name/ID so tests can check that no identifier reaches the audit log.
"""
import argparse
import csv
import os
import sys

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_data  # noqa: E402

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PATIENT_NAME = "SYNTHETIC^DEMO"
PATIENT_ID = "MEDINFER-DEMO-0001"


def write_ct(path, hu, index, study_uid, series_uid, seed):
    stored = np.clip(np.round(hu) + 1024, -32768, 32767).astype(np.int16)
    sop_uid = generate_uid(entropy_srcs=["medinfer-demo", str(seed), str(index)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(path, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
    ds.Modality, ds.BodyPartExamined = "CT", "CHEST"
    ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "20260101", 1, index + 1
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.Manufacturer = "medinfer synthetic demo"
    ds.PixelSpacing = [1.5, 1.5]
    ds.SliceThickness = 5.0
    ds.ImagePositionPatient = [-192.0, -192.0, 0.0 - 5.0 * index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = stored.tobytes()
    ds.save_as(path, write_like_original=False)
    return sop_uid


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--no-obvious", action="store_true", help="draw every case from the training distribution")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    study_uid = generate_uid(entropy_srcs=["medinfer-demo-study", str(args.seed)])
    series_uid = generate_uid(entropy_srcs=["medinfer-demo-series", str(args.seed)])
    rows = []
    for i in range(args.count):
        if i < 4 and not args.no_obvious:  # obvious cases: big bright lesion / none
            positive, kind = i % 2 == 0, "obvious"
            hu, info = demo_data.make_slice(rng, positive, lesion_radius=12.0, lesion_contrast=85.0)
        else:
            positive, kind = i % 2 == 0, "random"
            hu, info = demo_data.make_slice(rng, positive)
        name = f"{i:03d}_{kind}_{'positive' if positive else 'negative'}.dcm"
        write_ct(os.path.join(args.out, name), hu, i, study_uid, series_uid, args.seed)
        rows.append({"file": name, "label": int(positive), "kind": kind,
                     "lesion_radius_px": round(info["radius"], 2), "lesion_contrast_hu": round(info["contrast"], 1)})
    with open(os.path.join(args.out, "truth.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(args.out, "labels.csv"), "w", newline="") as fh:  # for 'medinfer calibrate fit'
        fh.write("path,label\n" + "".join(f"{r['file']},{r['label']}\n" for r in rows))
    print(f"wrote {len(rows)} DICOM files, truth.csv and labels.csv to {args.out}")


if __name__ == "__main__":
    main()
