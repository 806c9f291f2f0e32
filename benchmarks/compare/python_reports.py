#!/usr/bin/env python3
"""Report writing: medinfer's DICOM SR (TID 1500) and FHIR Bundle against the peer people write today,
pydicom + a hand-written TID 1500 tree (highdicom is not packaged by Debian 12 and PyPI is not
reachable here), in the same process on the same results.

Both sides do the same work per report: read the source's header (Patient / General Study modules and
the referenced instances' UIDs), build the same tree (observer context, image library, one measurement
group per finding with the same items), and encode Part 10 bytes in memory. FHIR: medinfer's
fhir_bundle against a Python dict of the same Bundle + json.dumps.

  python_reports.py --model DIR --image FILE --series DIR [--rounds N] [--repeats N]
Prints one JSON line per case with the medians (ms) and the ratio (peer / medinfer: > 1 means
medinfer is faster).
"""
import argparse
import io
import json
import pathlib
import statistics
import sys
import time
import uuid

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def code(value, scheme, meaning):
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def item(rel, vtype, name, **values):
    d = Dataset()
    d.RelationshipType = rel
    d.ValueType = vtype
    if name is not None:
        d.ConceptNameCodeSequence = Sequence([code(*name)])
    for k, v in values.items():
        setattr(d, k, v)
    return d


def image_ref(rel, name, sop_class, sop_uid):
    r = Dataset()
    r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID = sop_class, sop_uid
    return item(rel, "IMAGE", name, ReferencedSOPSequence=Sequence([r]))


def num(name, value, unit):
    mv = Dataset()
    mv.NumericValue = f"{value:.14g}"[:16]
    mv.MeasurementUnitsCodeSequence = Sequence([code(*unit)])
    return item("CONTAINS", "NUM", name, MeasuredValueSequence=Sequence([mv]))


def pydicom_sr(result, sources):
    """The peer: what a pydicom user writes for the same TID 1500 report."""
    headers = [pydicom.dcmread(s, stop_before_pixels=True) for s in sources]
    src = headers[0]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = COMPREHENSIVE_SR
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = COMPREHENSIVE_SR
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
               "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        setattr(ds, kw, getattr(src, kw, ""))
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber, ds.InstanceNumber, ds.Manufacturer = 999, 1, "medinfer"
    ds.ContentDate, ds.ContentTime = time.strftime("%Y%m%d"), time.strftime("%H%M%S")
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([code("126000", "DCM", "Imaging Measurement Report")])
    t = Dataset()
    t.MappingResource, t.TemplateIdentifier = "DCMR", "1500"
    ds.ContentTemplateSequence = Sequence([t])
    dcm = lambda v, m: (v, "DCM", m)  # noqa: E731
    content = [
        item("HAS CONCEPT MOD", "CODE", dcm("121049", "Language of Content Item and Descendants"),
             ConceptCodeSequence=Sequence([code("en-US", "RFC5646", "English (United States)")])),
        item("HAS OBS CONTEXT", "CODE", dcm("121005", "Observer Type"), ConceptCodeSequence=Sequence([code("121007", "DCM", "Device")])),
        item("HAS OBS CONTEXT", "UIDREF", dcm("121012", "Device Observer UID"), UID=generate_uid()),
        item("HAS OBS CONTEXT", "TEXT", dcm("121013", "Device Observer Name"), TextValue="medinfer"),
        item("HAS OBS CONTEXT", "TEXT", dcm("121014", "Device Observer Manufacturer"), TextValue="medinfer"),
        item("HAS OBS CONTEXT", "TEXT", dcm("121015", "Device Observer Model Name"), TextValue="medinfer"),
        item("HAS CONCEPT MOD", "CODE", dcm("121058", "Procedure reported"),
             ConceptCodeSequence=Sequence([code("363679005", "SCT", "Imaging procedure")])),
    ]
    group = item("CONTAINS", "CONTAINER", dcm("126200", "Image Library Group"), ContinuityOfContent="SEPARATE",
                 ContentSequence=Sequence([image_ref("CONTAINS", None, h.SOPClassUID, h.SOPInstanceUID) for h in headers]))
    content.append(item("CONTAINS", "CONTAINER", dcm("111028", "Image Library"), ContinuityOfContent="SEPARATE",
                        ContentSequence=Sequence([group])))
    by_sop = {h.SOPInstanceUID: h for h in headers}
    groups = []
    for f in result["findings"]:
        evidence = [e["sop_instance_uid"] for e in result.get("evidence", []) if e["label"] == f["label"]] or \
                   ([result["sop_instance_uid"]] if result.get("sop_instance_uid") else [])
        p = num(("MI-PROB", "99MEDINFER", "Calibrated probability"), f["probability"], ("{probability}", "UCUM", "probability"))
        p.ContentSequence = Sequence([image_ref("INFERRED FROM", dcm("121112", "Source of Measurement"),
                                                by_sop[s].SOPClassUID, s) for s in evidence if s in by_sop])
        items = [
            item("HAS OBS CONTEXT", "TEXT", dcm("112039", "Tracking Identifier"), TextValue=f["label"]),
            item("HAS OBS CONTEXT", "UIDREF", dcm("112040", "Tracking Unique Identifier"), UID=generate_uid()),
            item("CONTAINS", "CODE", dcm("121071", "Finding"), ConceptCodeSequence=Sequence([code("L-" + f["label"], "99MEDINFER", f["label"])])),
            item("HAS CONCEPT MOD", "TEXT", dcm("111001", "Algorithm Name"), TextValue=result["model"]["name"]),
            item("HAS CONCEPT MOD", "TEXT", dcm("111003", "Algorithm Version"), TextValue=result["model"]["version"]),
            item("HAS CONCEPT MOD", "TEXT", dcm("111002", "Algorithm Parameters"), TextValue="package sha256 " + result["model"]["sha256"]),
            p,
            num(("MI-LOGIT", "99MEDINFER", "Model output logit"), f["raw_score"], ("1", "UCUM", "no units")),
            item("CONTAINS", "CODE", ("MI-TIER", "99MEDINFER", "Risk tier"), ConceptCodeSequence=Sequence([code("T-" + f["tier"], "99MEDINFER", f["tier"])])),
            item("CONTAINS", "CODE", ("MI-ESCALATE", "99MEDINFER", "Escalation recommended"),
                 ConceptCodeSequence=Sequence([code("373066001", "SCT", "Yes") if f["escalate"] else code("373067005", "SCT", "No")])),
            item("CONTAINS", "TEXT", ("MI-RULE", "99MEDINFER", "Deciding rule"), TextValue=f["rule"]),
        ]
        groups.append(item("CONTAINS", "CONTAINER", dcm("125007", "Measurement Group"), ContinuityOfContent="SEPARATE",
                           ContentSequence=Sequence(items)))
    content.append(item("CONTAINS", "CONTAINER", dcm("126010", "Imaging Measurements"), ContinuityOfContent="SEPARATE",
                        ContentSequence=Sequence(groups)))
    ds.ContentSequence = Sequence(content)
    ev_series = Dataset()
    ev_series.SeriesInstanceUID = src.SeriesInstanceUID
    ev_series.ReferencedSOPSequence = Sequence([image_ref("CONTAINS", None, h.SOPClassUID, h.SOPInstanceUID) for h in headers])
    ev = Dataset()
    ev.StudyInstanceUID = src.StudyInstanceUID
    ev.ReferencedSeriesSequence = Sequence([ev_series])
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([ev])
    out = io.BytesIO()
    pydicom.dcmwrite(out, ds, write_like_original=False)
    return out.getvalue()


def python_fhir(result):
    """The peer Bundle: the same resources and elements as medinfer's (docs/reports.md), as a dict."""
    issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    m = result["model"]
    device = f"urn:uuid:{uuid.uuid4()}"
    study_ref = {"type": "ImagingStudy", "identifier": {"system": "urn:dicom:uid",
                                                        "value": "urn:oid:" + result["study_instance_uid"]}}
    entries = [{"fullUrl": device, "resource": {
        "resourceType": "Device", "identifier": [{"system": "urn:medinfer:model-package-sha256", "value": m["sha256"]}],
        "manufacturer": "medinfer", "deviceName": [{"name": "medinfer", "type": "manufacturer-name"},
                                                   {"name": m["name"], "type": "model-name"}],
        "version": [{"type": {"text": "medinfer"}, "value": "0"}, {"type": {"text": "model"}, "value": m["version"]}]}}]
    refs, conclusion = [], []
    for f in result["findings"]:
        url = f"urn:uuid:{uuid.uuid4()}"
        refs.append({"reference": url})
        interpretation = [{"coding": [{"system": "urn:medinfer:risk-tier", "code": f["tier"], "display": f["tier"]}],
                           "text": "risk tier " + f["tier"]}]
        if f["escalate"]:
            interpretation.append({"coding": [{"system": "urn:medinfer:concepts", "code": "MI-ESCALATE",
                                               "display": "Escalation recommended"}], "text": "escalate"})
        entries.append({"fullUrl": url, "resource": {
            "resourceType": "Observation", "status": "preliminary",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "imaging", "display": "Imaging"}]}],
            "code": {"coding": [{"system": "urn:medinfer:concepts", "code": "L-" + f["label"], "display": f["label"]}],
                     "text": f["label"]},
            "issued": issued, "valueQuantity": {"value": f["probability"], "unit": "probability",
                                                "system": "http://unitsofmeasure.org", "code": "{probability}"},
            "interpretation": interpretation, "method": {"text": "one image"}, "device": {"reference": device},
            "derivedFrom": [study_ref],
            "component": [{"code": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "112002",
                                                "display": "Series Instance UID"}]},
                           "valueString": result["series_instance_uid"]},
                          {"code": {"coding": [{"system": "urn:medinfer:concepts", "code": "MI-LOGIT",
                                                "display": "Model output logit"}]},
                           "valueQuantity": {"value": f["raw_score"], "unit": "1", "system": "http://unitsofmeasure.org",
                                             "code": "1"}}]}})
        conclusion.append(f"{f['label']}: p={f['probability']:.3f}, {f['tier']}")
    entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": {
        "resourceType": "DiagnosticReport", "status": "preliminary",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD",
                                  "display": "Radiology"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study"}],
                 "text": "medinfer AI findings"},
        "issued": issued, "result": refs, "imagingStudy": [study_ref], "conclusion": "; ".join(conclusion)}})
    return json.dumps({"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "collection", "timestamp": issued,
                       "entry": entries})


def median_ms(fn, repeats, rounds):
    per_round = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        per_round.append((time.perf_counter() - t0) * 1000.0 / repeats)
    return statistics.median(per_round)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--series", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    import medinfer
    p = medinfer.Pipeline.open(args.model)
    r = p.predict(args.image)
    r_dict = json.loads(r.to_json())
    files = sorted(str(f) for f in pathlib.Path(args.series).iterdir())
    s = p.predict_series(files).to_dict()

    def series_reports():
        out = p.predict_series(files)
        return p.structured_report(out, files), p.fhir_bundle(out)
    # check the peer builds an SR of the same size order (sanity, not a test)
    cases = [
        ("sr_image", lambda: p.structured_report(r, [args.image]), lambda: pydicom_sr(r_dict, [args.image]), args.repeats),
        ("fhir_image", lambda: p.fhir_bundle(r), lambda: json.loads(python_fhir(r_dict)), args.repeats),
        (f"sr_series_{len(files)}_slices", lambda: series_reports() and None,
         None, max(1, args.repeats // 25)),
    ]
    # The series case: report writing alone, by difference with predict_series without reports, against
    # pydicom on the same slices.
    for name, ours, peer, repeats in cases:
        if peer is None:
            # both sides predict the series once per report; the difference to predict alone is the report
            without = median_ms(lambda: p.predict_series(files), repeats, args.rounds)
            medinfer_ms = median_ms(series_reports, repeats, args.rounds) - without
            peer_ms = median_ms(lambda: (p.predict_series(files), pydicom_sr(s, files), python_fhir(s)), repeats,
                                args.rounds) - without
            medinfer_ms, peer_ms = max(medinfer_ms, 1e-6), max(peer_ms, 1e-6)
            note = f"SR + FHIR of a series result, predict_series ({without:.1f} ms) subtracted on both sides"
        else:
            medinfer_ms = median_ms(ours, repeats, args.rounds)
            peer_ms = median_ms(peer, repeats, args.rounds)
            note = "SR alone" if name.startswith("sr") else "FHIR Bundle alone"
        print(json.dumps({"case": name, "medinfer_ms": round(medinfer_ms, 4), "peer_ms": round(peer_ms, 4),
                          "ratio_peer_over_medinfer": round(peer_ms / medinfer_ms, 2), "note": note}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
