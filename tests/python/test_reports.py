"""DICOM SR (TID 1500) and FHIR R4 reports, through the CLI (`predict --sr DIR --fhir DIR`) and Python.

Every finding shape (binary, multi-label, multi-class, indeterminate, a series with evidence, a study)
goes through Debian's `dciodvfy` (no errors), `dsrdump`, pydicom (the content tree walked to the
probability) and medinfer's own reader (a non-image object); FHIR Bundles through a JSON Schema subset
of R4 (fhir_r4_subset.schema.json) and reference checks. One SR is stored in a real PACS: Debian's
Orthanc, started here on loopback, which files it under the source study and gives it back byte for
byte.
"""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

import jsonschema
import pydicom
import pytest

import medinfer
from test_many_series import STUDY_UID, write_series

HERE = pathlib.Path(__file__).resolve().parent
FHIR_SCHEMA = json.loads((HERE / "fhir_r4_subset.schema.json").read_text())
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
CLI = str(pathlib.Path(os.environ.get("MEDINFER_BUILD_DIR", HERE.parents[1] / "build")) / "examples" / "cli" / "medinfer")


def run(cli, *args, **kw):
    return subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=300, **kw)


def lines_of(stdout):
    return [json.loads(l) for l in stdout.splitlines()]


def dciodvfy_errors(path):
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    text = out.stdout + out.stderr
    return [l for l in text.splitlines() if l.startswith("Error")], text


def walk(items, depth=0):
    for item in items:
        yield item, depth
        yield from walk(getattr(item, "ContentSequence", []), depth + 1)


def meaning(item):
    return item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else ""


def groups_of(ds):
    """{tracking identifier: {concept meaning: value}} of each TID 1501 measurement group."""
    measurements = [i for i in ds.ContentSequence if meaning(i) == "Imaging Measurements"]
    assert len(measurements) == 1
    out = {}
    for group in measurements[0].ContentSequence:
        assert meaning(group) == "Measurement Group"
        values, images = {}, []
        for item in group.ContentSequence:
            if item.ValueType == "NUM":
                values[meaning(item)] = float(item.MeasuredValueSequence[0].NumericValue)
                values[meaning(item) + " unit"] = item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue
                images += [c.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for c in getattr(item, "ContentSequence", [])]
            elif item.ValueType == "CODE":
                c = item.ConceptCodeSequence[0]
                values[meaning(item)] = (c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning)
            else:
                values[meaning(item)] = str(item.get("TextValue", item.get("UID", "")))
        values["evidence"] = images
        out[values["Tracking Identifier"]] = values
    return out


def check_sr(path, source_file):
    """The SR passes dciodvfy and dsrdump, pydicom reads it, medinfer reads it as a non-image object."""
    errors, text = dciodvfy_errors(path)
    assert errors == [], text
    dump = subprocess.run(["dsrdump", str(path)], capture_output=True, text=True)
    assert dump.returncode == 0 and "Imaging Measurement Report" in dump.stdout, dump.stderr
    ds = pydicom.dcmread(path)
    src = pydicom.dcmread(source_file, stop_before_pixels=True)
    assert ds.SOPClassUID == COMPREHENSIVE_SR and ds.Modality == "SR"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    # filed with the source study, in a new series
    assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.PatientID == src.PatientID
    assert ds.PatientName == src.PatientName
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert ds.CompletionFlag == "COMPLETE" and ds.VerificationFlag == "UNVERIFIED"
    observer = {meaning(i): str(i.get("TextValue", "")) for i in ds.ContentSequence if i.RelationshipType == "HAS OBS CONTEXT"}
    assert observer["Device Observer Name"] == "medinfer"
    assert observer["Device Observer Model Name"] == "medinfer " + medinfer.version()
    header = medinfer.dicom.read_header(str(path))
    assert header.modality == "SR" and header.sop_class_uid == COMPREHENSIVE_SR
    assert header.has_pixel_data is False and medinfer.dicom.read_header(str(source_file)).has_pixel_data is True
    inspect = subprocess.run([CLI, "inspect", "--json", str(path)], capture_output=True, text=True)
    assert inspect.returncode == 0 and json.loads(inspect.stdout)["image"] is False, inspect.stdout
    with pytest.raises(medinfer.InvalidDicomError, match="not an image"):
        medinfer.dicom.read_instance(str(path))
    alone = pathlib.Path(str(path) + ".scan")
    alone.mkdir(exist_ok=True)
    shutil.copy(path, alone / "sr.dcm")
    index = medinfer.dicom.scan_directory(str(alone))
    assert index["studies"] == [] and "not an image" in index["skipped"][0]["reason"]
    shutil.rmtree(alone)
    return ds


def check_fhir(path, result_findings):
    bundle = json.loads(pathlib.Path(path).read_text())
    jsonschema.validate(bundle, FHIR_SCHEMA)
    urls = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    observations = [r for r in urls.values() if r["resourceType"] == "Observation"]
    reports = [r for r in urls.values() if r["resourceType"] == "DiagnosticReport"]
    assert len(reports) == 1
    assert {r["reference"] for r in reports[0]["result"]} == {u for u, r in urls.items() if r["resourceType"] == "Observation"}
    for o in observations:
        assert urls[o["device"]["reference"]]["resourceType"] == "Device"
    assert [o["valueQuantity"]["value"] for o in observations] == [f["probability"] for f in result_findings]
    return bundle, observations


@pytest.fixture(scope="module")
def coded_heads(heads, tmp_path_factory):
    """The multi-label and multi-class heads with SNOMED-coded labels in their manifests."""
    out = tmp_path_factory.mktemp("coded")
    codes = {"lesion": ("52988006", "SCT", "Lesion"), "calcification": ("18115005", "SCT", "Pathologic calcification"),
             "artifact": ("47973001", "SCT", "Artifact"), "fat": ("256674009", "SCT", "Fat"),
             "soft_tissue": ("87784001", "SCT", "Soft tissue"), "bone": ("3138006", "SCT", "Bone tissue")}
    for name in ("multi-label", "multi-class"):
        shutil.copytree(heads / name, out / name)
        m = json.loads((out / name / "manifest.json").read_text())
        m["labels"] = [{"name": l, "code_value": codes[l][0], "coding_scheme": codes[l][1], "code_meaning": codes[l][2]}
                       for l in m["labels"]]
        (out / name / "manifest.json").write_text(json.dumps(m))
    return out, codes


def test_binary_and_indeterminate_images(cli, demo_model, study, tmp_path):
    directory, rows = study
    files = [directory / r["file"] for r in rows]
    r = run(cli, "predict", "--quiet", "--model", demo_model, "--sr", tmp_path / "sr", "--fhir", tmp_path / "fhir", *files)
    assert r.returncode == 0, r.stderr
    lines = lines_of(r.stdout)
    assert any(l["indeterminate"] for l in lines) and any(not l["indeterminate"] for l in lines)
    for line in lines:
        assert line["sr"] == str(tmp_path / "sr" / (line["sop_instance_uid"] + ".sr.dcm"))
        ds = check_sr(line["sr"], line["input"])
        g = groups_of(ds)["lesion"]
        assert g["Calibrated probability"] == pytest.approx(line["probability"], rel=1e-12, abs=1e-14)
        assert g["Calibrated probability unit"] == "{probability}"
        assert g["Finding"] == ("L-lesion", "99MEDINFER", "lesion")  # the demo label has no code: private
        assert g["evidence"] == [line["sop_instance_uid"]]
        assert g["Algorithm Name"] == line["model"]["name"] and g["Algorithm Version"] == line["model"]["version"]
        assert line["model"]["sha256"] in g["Algorithm Parameters"]
        assert g["Escalation recommended"][2] == ("Yes" if line["escalate"] else "No")
        assert g["Operating point"] == line["operating_point"]["name"]
        assert g["Positive at operating point"][2] == ("Yes" if line["operating_point"]["positive"] else "No")
        if line["indeterminate"]:
            assert g["Risk tier"] == ("MI-INDETERMINATE", "99MEDINFER", "Indeterminate")
            assert g["Indeterminate reason"] == line["reason"]
        else:
            assert g["Risk tier"][2] == line["tier"] and "Indeterminate reason" not in g
        _, observations = check_fhir(line["fhir"], line["findings"])
        o = observations[0]
        assert o["derivedFrom"][0]["identifier"]["value"] == "urn:oid:" + line["study_instance_uid"]
        components = {c["code"]["coding"][0]["display"]: c.get("valueString") for c in o["component"]}
        assert components["Series Instance UID"] == line["series_instance_uid"]
        codes = [c["coding"][0]["code"] for c in o["interpretation"]]
        assert ("IND" in codes) == line["indeterminate"]
        assert ("MI-ESCALATE" in codes) == line["escalate"]
        assert ("POS" in codes) == line["operating_point"]["positive"]


@pytest.mark.parametrize("task", ["multi-label", "multi-class"])
def test_multi_label_and_multi_class_carry_the_manifest_codes(cli, coded_heads, study, tmp_path, task):
    pkgs, codes = coded_heads
    directory, rows = study
    src = directory / rows[0]["file"]
    r = run(cli, "predict", "--quiet", "--model", pkgs / task, "--sr", tmp_path, "--fhir", tmp_path, src)
    assert r.returncode == 0, r.stderr
    line = lines_of(r.stdout)[0]
    groups = groups_of(check_sr(line["sr"], src))
    assert list(groups) == [f["label"] for f in line["findings"]]
    for f in line["findings"]:
        assert groups[f["label"]]["Finding"] == codes[f["label"]]
        assert groups[f["label"]]["Calibrated probability"] == pytest.approx(f["probability"], rel=1e-12, abs=1e-14)
    # only the primary finding's policy carries the operating point (the heads have none)
    bundle, observations = check_fhir(line["fhir"], line["findings"])
    for o, f in zip(observations, line["findings"]):
        assert o["code"]["coding"][0] == {"system": "http://snomed.info/sct", "code": codes[f["label"]][0],
                                          "display": codes[f["label"]][2]}
    if task == "multi-class":
        assert sum(o["valueQuantity"]["value"] for o in observations) == pytest.approx(1.0, abs=1e-12)


def test_series_with_evidence_and_study(cli, demo_model, tmp_path):
    files = write_series(tmp_path / "in" / "a", n=8, series_uid=STUDY_UID + ".1", lesion=5)
    write_series(tmp_path / "in" / "b", n=4, series_uid=STUDY_UID + ".2", lesion=-1)
    r = run(cli, "predict", "--quiet", "--recursive", "--by", "series", "--model", demo_model, "--sr", tmp_path / "sr",
            "--fhir", tmp_path / "fhir", tmp_path / "in")
    assert r.returncode == 0, r.stderr
    lines = lines_of(r.stdout)
    assert len(lines) == 2
    for line in lines:
        assert pathlib.Path(line["sr"]).name == line["series_instance_uid"] + ".sr.dcm"
        ds = check_sr(line["sr"], line["input"])
        g = groups_of(ds)["lesion"]
        assert g["Calibrated probability"] == pytest.approx(line["probability"], rel=1e-12, abs=1e-14)
        # the evidence slices, best first, referenced from the probability; every slice in the library
        assert g["evidence"] == [e["sop_instance_uid"] for e in line["evidence"]]
        assert f"max over {line['slices']} slices" in g["Algorithm Parameters"]
        library = [i for i in ds.ContentSequence if meaning(i) == "Image Library"][0]
        refs = [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i, _ in walk(library.ContentSequence)
                if i.ValueType == "IMAGE"]
        assert len(refs) == line["slices"]
        evidence = [s.ReferencedSOPInstanceUID for e in ds.CurrentRequestedProcedureEvidenceSequence
                    for se in e.ReferencedSeriesSequence for s in se.ReferencedSOPSequence]
        assert sorted(evidence) == sorted(refs)
        check_fhir(line["fhir"], line["findings"])
    # --by study: one SR for the study, a measurement group per series (and label)
    r = run(cli, "predict", "--quiet", "--recursive", "--by", "study", "--model", demo_model, "--sr", tmp_path / "st",
            "--fhir", tmp_path / "st", tmp_path / "in")
    assert r.returncode == 0, r.stderr
    study = lines_of(r.stdout)[0]
    assert pathlib.Path(study["sr"]).name == STUDY_UID + ".sr.dcm"
    ds = check_sr(study["sr"], files[0])
    groups = groups_of(ds)
    assert sorted(groups) == sorted(f"lesion / series {s['series_instance_uid']}" for s in study["series"])
    findings = [f for s in study["series"] for f in s["findings"]]
    _, observations = check_fhir(study["fhir"], findings)
    assert len(observations) == 2


def test_python_reports(demo_model, study, tmp_path):
    directory, rows = study
    p = medinfer.Pipeline.open(str(demo_model))
    src = str(directory / rows[0]["file"])
    r = p.predict(src)
    sr = p.structured_report(r, [src])
    (tmp_path / "a.dcm").write_bytes(sr)
    check_sr(tmp_path / "a.dcm", src)
    bundle = p.fhir_bundle(r)
    jsonschema.validate(bundle, FHIR_SCHEMA)
    files = write_series(tmp_path / "series", n=6)
    out = p.predict_series(files)
    assert isinstance(out, medinfer.SeriesResult) and isinstance(out, medinfer.Result)
    (tmp_path / "s.dcm").write_bytes(p.structured_report(out, files))
    assert groups_of(check_sr(tmp_path / "s.dcm", files[0]))["lesion"]["evidence"] == [
        e.sop_instance_uid for e in out.evidence]
    jsonschema.validate(p.fhir_bundle(out), FHIR_SCHEMA)
    folder = [tmp_path / "series"]
    out = p.predict_series(folder)
    assert p.structured_report(out, folder)[128:132] == b"DICM"  # a folder: its files are the sources
    study = p.predict_study(folder)
    assert isinstance(study, medinfer.StudyResult) and len(study.series) == 1
    assert p.structured_report(study, folder)[128:132] == b"DICM"
    assert p.fhir_bundle(study)["resourceType"] == "Bundle"
    # bad input: a result without UIDs (pixels), a source of another study, no sources
    img = p.predict(medinfer.dicom.read_instance(src)[0])
    with pytest.raises(medinfer.InvalidArgumentError, match="Study Instance UID"):
        p.structured_report(img, [src])
    with pytest.raises(medinfer.InvalidArgumentError, match="Study Instance UID"):
        p.fhir_bundle(img)
    with pytest.raises(medinfer.InvalidArgumentError, match="another study"):
        p.structured_report(r, [files[0]])
    with pytest.raises(medinfer.InvalidArgumentError, match="DICOM files the result came from"):
        p.structured_report(r, [])
    with pytest.raises(medinfer.InvalidDicomError):
        (tmp_path / "junk.dcm").write_text("not DICOM")
        p.structured_report(r, [str(tmp_path / "junk.dcm")])


def test_bad_label_codes_are_refused_naming_the_field(demo_model, tmp_path):
    for bad, field in [({"name": "lesion", "code_value": "", "coding_scheme": "SCT", "code_meaning": "Lesion"}, "code_value"),
                       ({"name": "lesion", "code_value": "1", "coding_scheme": "S\\CT", "code_meaning": "x"}, "coding_scheme"),
                       ({"name": "lesion", "code_value": "1", "coding_scheme": "SCT", "code_meaning": "x" * 65}, "code_meaning"),
                       ({"name": "lesion", "code_value": "1", "coding_scheme": "SCT"}, "code_meaning"),
                       ({"name": "lesion", "code_value": "1", "coding_scheme": "SCT", "code_meaning": "x", "extra": 1}, "extra"),
                       ({"code_value": "1", "coding_scheme": "SCT", "code_meaning": "x"}, "name")]:
        pkg = tmp_path / field
        shutil.copytree(demo_model, pkg, dirs_exist_ok=True)
        m = json.loads((pkg / "manifest.json").read_text())
        m["labels"] = [bad]
        (pkg / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(medinfer.InvalidArgumentError, match=r"labels\[0\].*" + field):
            medinfer.Pipeline.open(str(pkg))


def test_an_unwritable_report_folder_fails_every_input_and_leaves_nothing(cli, demo_model, study, tmp_path):
    directory, rows = study
    files = [str(directory / r["file"]) for r in rows[:3]]
    out = tmp_path / "ro"
    out.mkdir()
    audit = tmp_path / "audit.jsonl"
    cmd = [cli, "predict", "--model", str(demo_model), "--audit-log", str(audit), "--sr", str(out), *files]
    out.chmod(0o555)
    if os.geteuid() == 0:
        # root ignores permission bits through CAP_DAC_OVERRIDE: run the CLI without it (util-linux
        # setpriv), or else in a private mount namespace with the folder bind-mounted read-only
        drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
        if shutil.which("setpriv") and subprocess.run([*drop, "true"]).returncode == 0:
            cmd = [*drop, *cmd]
        elif shutil.which("unshare") and subprocess.run(["unshare", "-m", "true"]).returncode == 0:
            cmd = ["unshare", "-m", "sh", "-c",
                   f'mount --bind "{out}" "{out}" && mount -o remount,bind,ro "{out}" && exec "$@"', "sh", *cmd]
        else:
            pytest.skip("running as root with neither setpriv nor mount namespaces: no way to make a read-only folder")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr
    lines = lines_of(r.stdout)
    assert [l["input"] for l in lines] == files
    assert all(l["error"]["code"] == "kIo" and str(out) in l["error"]["message"] for l in lines)
    assert "--sr" in r.stderr and list(out.iterdir()) == []
    assert not audit.exists() or not any("prediction" in l for l in audit.read_text().splitlines())


def test_a_report_that_cannot_be_made_fails_that_input_but_keeps_its_result(cli, demo_model, study, tmp_path):
    """A file that predicts but carries no StudyInstanceUID: its prediction is printed (and audited), its
    report cannot be filed, so the input counts as failed with report_error, and nothing is left in DIR."""
    directory, rows = study
    good = directory / rows[0]["file"]
    ds = pydicom.dcmread(good)
    del ds.StudyInstanceUID
    bad = tmp_path / "nostudy.dcm"
    ds.save_as(bad)
    r = run(cli, "predict", "--model", demo_model, "--sr", tmp_path / "sr", "--format", "csv", good, bad)
    assert r.returncode == 1, r.stderr
    import csv
    rows_out = list(csv.DictReader(r.stdout.splitlines()))
    assert rows_out[0]["sr"].endswith(".sr.dcm") and rows_out[0]["error_code"] == ""
    assert rows_out[1]["probability"] != "" and rows_out[1]["error_code"] == "kInvalidArgument"
    assert "Study Instance UID" in rows_out[1]["error_message"]
    assert len(list((tmp_path / "sr").iterdir())) == 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def orthanc(tmp_path):
    exe = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not os.path.exists(exe):
        pytest.skip("Orthanc is not installed (scripts/install-deps.sh test installs it)")
    port = free_port()
    config = {"Name": "medinfer-test", "StorageDirectory": str(tmp_path / "db"), "IndexDirectory": str(tmp_path / "db"),
              "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "Plugins": [], "HttpsVerifyPeers": False}
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    proc = subprocess.Popen([exe, str(tmp_path / "orthanc.json")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/system", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("Orthanc exited: " + proc.stderr.read().decode(errors="replace"))
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def rest(url, path, data=None):
    req = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return body if path.endswith("/file") else json.loads(body)


def test_orthanc_files_the_sr_under_the_source_study(cli, demo_model, study, tmp_path, orthanc):
    directory, rows = study
    src = directory / rows[0]["file"]
    r = run(cli, "predict", "--quiet", "--model", demo_model, "--sr", tmp_path / "sr", src)
    assert r.returncode == 0, r.stderr
    line = lines_of(r.stdout)[0]
    image = rest(orthanc, "/instances", src.read_bytes())
    sr_bytes = pathlib.Path(line["sr"]).read_bytes()
    stored = rest(orthanc, "/instances", sr_bytes)
    assert stored["Status"] == "Success" and stored["ParentStudy"] == image["ParentStudy"]
    found = rest(orthanc, "/tools/find", json.dumps({"Level": "Instance", "Query": {
        "StudyInstanceUID": line["study_instance_uid"], "Modality": "SR"}}).encode())
    assert found == [stored["ID"]]
    assert rest(orthanc, f"/instances/{stored['ID']}/file") == sr_bytes  # byte-identical
    tags = rest(orthanc, f"/instances/{stored['ID']}/simplified-tags")
    assert tags["SOPClassUID"] == COMPREHENSIVE_SR and tags["StudyInstanceUID"] == line["study_instance_uid"]


def test_a_latin1_patient_name_arrives_in_the_sr_as_utf8(cli, demo_model, study, tmp_path):
    directory, rows = study
    ds = pydicom.dcmread(directory / rows[0]["file"])
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    ds.StudyDescription = "Thorax nativ, Größe"
    src = tmp_path / "latin1.dcm"
    ds.save_as(src)
    assert "Müller".encode("latin-1") in src.read_bytes()
    r = run(cli, "predict", "--quiet", "--model", demo_model, "--sr", tmp_path / "sr", src)
    assert r.returncode == 0, r.stderr
    line = lines_of(r.stdout)[0]
    sr = check_sr(line["sr"], src)
    assert sr.SpecificCharacterSet == "ISO_IR 192"
    assert str(sr.PatientName) == "Müller^Jürgen" and sr.StudyDescription == "Thorax nativ, Größe"
