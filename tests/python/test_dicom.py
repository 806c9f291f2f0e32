"""medinfer's DICOM readers from Python, checked against pydicom (an independent reader and writer)."""
import random

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

import medinfer

CT_SMALL = pydicom.data.get_testdata_file("CT_small.dcm")
MR_BIG = pydicom.data.get_testdata_file("MR_small_bigendian.dcm")


def write_slice(path, z, value, instance, series_uid, study_uid, syntax=ExplicitVRLittleEndian, rows=6, cols=5):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "CT"
    ds.PatientName = "TEST^SERIES"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [-10.0, -20.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.9]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    ds.PixelData = np.full((rows, cols), value, dtype=np.int16).tobytes()
    ds.is_little_endian = True
    ds.is_implicit_VR = syntax == ImplicitVRLittleEndian
    ds.save_as(str(path), write_like_original=False)


def test_read_instance_matches_pydicom_modality_values():
    image, header = medinfer.dicom.read_instance(CT_SMALL)
    ds = pydicom.dcmread(CT_SMALL)
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert image.dtype == np.float32 and image.shape == (ds.Rows, ds.Columns)
    np.testing.assert_allclose(image, expected, atol=1e-3)
    assert header.modality == "CT"
    assert header.sop_instance_uid == ds.SOPInstanceUID
    assert header.pixel_spacing == pytest.approx([float(v) for v in ds.PixelSpacing])
    assert not hasattr(header, "patient_name") and "patient_name" not in header.to_dict()  # identifiers are kept apart


def test_read_stored_pixels_matches_pydicom_big_endian():
    stored, photometric = medinfer.dicom.read_stored_pixels(MR_BIG)
    ds = pydicom.dcmread(MR_BIG)
    assert photometric == "MONOCHROME2"
    assert stored.shape == (1, ds.Rows, ds.Columns, 1)
    np.testing.assert_array_equal(stored[0, :, :, 0], ds.pixel_array)


def test_read_series_sorts_by_position_and_scan_skips_non_dicom(tmp_path):
    study, series = generate_uid(), generate_uid()
    zs = [5.0 + 1.25 * k for k in range(9)]
    order = list(range(9))
    random.Random(4).shuffle(order)
    for i, k in enumerate(order):
        syntax = ImplicitVRLittleEndian if i % 2 else ExplicitVRLittleEndian
        write_slice(tmp_path / f"x{i}.dcm", zs[k], 10 * k, 50 - i, series, study, syntax)
    (tmp_path / "notes.txt").write_text("not an image")
    index = medinfer.dicom.scan_directory(str(tmp_path))
    assert index["files_seen"] == 10
    assert [s["path"].endswith("notes.txt") for s in index["skipped"]] == [True]
    files = index["studies"][0]["series"][0]["files"]
    volume, info = medinfer.dicom.read_series(files, strict=True)
    assert volume.shape == (9, 6, 5) and volume.dtype == np.float32
    np.testing.assert_allclose(volume[:, 0, 0], [2 * 10 * k - 100 for k in range(9)])
    assert info["spacing"] == pytest.approx([0.9, 0.7, 1.25])
    assert info["origin"] == pytest.approx([-10.0, -20.0, 5.0])
    assert info["warnings"] == []


def test_deidentify_file_output_read_by_pydicom(tmp_path):
    out = tmp_path / "anon.dcm"
    report = medinfer.dicom.deidentify_file(CT_SMALL, str(out), "a key of at least sixteen bytes")
    assert report.uids_replaced >= 3
    assert isinstance(report, medinfer.dicom.DeidentifyReport)
    before, after = pydicom.dcmread(CT_SMALL), pydicom.dcmread(str(out))
    assert str(after.PatientName) == "ANONYMIZED"
    assert after.PatientIdentityRemoved == "YES"
    assert after.StudyInstanceUID == medinfer.dicom.pseudonymize_uid(before.StudyInstanceUID, "a key of at least sixteen bytes")
    np.testing.assert_array_equal(after.pixel_array, before.pixel_array)
    assert not any(e.tag.is_private for e in after)


def test_errors_are_typed(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 200)
    with pytest.raises(medinfer.InvalidDicomError) as e:
        medinfer.dicom.read_instance(str(junk))
    assert e.value.code == "kInvalidDicom" and "junk.dcm" in str(e.value)
    with pytest.raises(medinfer.NotFoundError):
        medinfer.dicom.read_stored_pixels(str(tmp_path / "missing.dcm"))
    with pytest.raises(medinfer.InvalidArgumentError):
        medinfer.dicom.read_instance(CT_SMALL, frame=3)
