"""medinfer-dicom-node on loopback with DCMTK's echoscu, storescu and storescp, and Debian's Orthanc as a
real PACS: echo, a rejected calling AE title, a 50-slice series whose SR arrives at the destination,
kill -9 between the C-STORE responses and the report (the report arrives once after the restart),
SIGTERM, and a study sent by Orthanc to the node with the SR found back in Orthanc under the study."""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pydicom
import pytest

import make_sample_study

HERE = pathlib.Path(__file__).resolve().parent
BUILD = pathlib.Path(os.environ.get("MEDINFER_BUILD_DIR", HERE.parents[1] / "build"))
NODE = BUILD / "examples" / "dicom_node" / "medinfer-dicom-node"
DEMO = HERE.parents[1] / "models" / "demo"
STUDY = "1.2.826.0.1.3680043.8.498.2017"

pytestmark = pytest.mark.skipif(not NODE.exists(), reason="medinfer-dicom-node not built")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_series(folder, n, series_uid=STUDY + ".1"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20)
    for i in range(n):
        make_sample_study.write_ct(str(folder / f"{i:03d}.dcm"), rng.normal(0, 20, (64, 64)).astype(np.float32), i,
                                   STUDY, series_uid, 20)
    return sorted(folder.iterdir())


class Node:
    def __init__(self, tmp, destination, allow="PACS", idle=1.0, spool=None):
        self.port = free_port()
        self.spool = spool or tmp / "spool"
        self.proc = subprocess.Popen([str(NODE), "--model", str(DEMO), "--aet", "NODE", "--port", str(self.port),
                                      "--allow-aet", allow, "--spool", str(self.spool), "--destination", destination,
                                      "--series-idle-seconds", str(idle), "--audit-log", str(tmp / "audit.jsonl")],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("ready NODE"), line + self.proc.stderr.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err


@pytest.fixture
def destination(tmp_path):
    port = free_port()
    out = tmp_path / "received"
    out.mkdir()
    proc = subprocess.Popen(["storescp", "-aet", "DEST", "-od", str(out), str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["echoscu", "-aec", "DEST", "127.0.0.1", str(port)], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    yield f"DEST@127.0.0.1:{port}", out
    proc.terminate()
    proc.wait(timeout=30)


def wait_for(predicate, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_echo_rejection_and_a_50_slice_series_reported(tmp_path, destination):
    dest, received = destination
    files = write_series(tmp_path / "series", 50)
    node = Node(tmp_path, dest)
    assert subprocess.run(["echoscu", "-aet", "PACS", "-aec", "NODE", "127.0.0.1", str(node.port)]).returncode == 0
    bad = subprocess.run(["echoscu", "-aet", "INTRUDER", "-aec", "NODE", "127.0.0.1", str(node.port)], capture_output=True,
                         text=True)
    assert bad.returncode != 0 and "Calling AE Title Not Recognized" in bad.stderr
    assert subprocess.run(["storescu", "-aet", "INTRUDER", "-aec", "NODE", "127.0.0.1", str(node.port), str(files[0])],
                          capture_output=True).returncode != 0
    r = subprocess.run(["storescu", "-aet", "PACS", "-aec", "NODE", "127.0.0.1", str(node.port), *map(str, files)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: len(list(received.iterdir())) == 1)
    sr = pydicom.dcmread(next(received.iterdir()))
    assert sr.Modality == "SR" and sr.StudyInstanceUID == STUDY
    library = [i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeMeaning == "Image Library"][0]
    assert len(library.ContentSequence[0].ContentSequence) == 50  # every slice referenced
    code, out, err = node.stop()
    assert code == 0, err
    result = json.loads(out.splitlines()[0])
    assert result["slices"] == 50 and result["series_instance_uid"] == STUDY + ".1"
    records = [json.loads(l) for l in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert len([r for r in records if r["event"] == "inference"]) == 51  # 50 slices + the series
    transfers = [r["detail"] for r in records if r["event"] == "dicom_transfer"]
    assert "received 50 instance(s) from PACS" in transfers and any(t.startswith("sent an SR to DEST@") for t in transfers)
    # nothing from the intruder reached the spool
    assert sorted(p.name for p in (node.spool / (STUDY + ".1")).glob("*.dcm")) == sorted(
        pydicom.dcmread(f).SOPInstanceUID + ".dcm" for f in files)


def test_kill_9_before_the_report_then_restart_reports_once(tmp_path, destination):
    dest, received = destination
    files = write_series(tmp_path / "series", 20)
    node = Node(tmp_path, dest, idle=5)
    r = subprocess.run(["storescu", "-aet", "PACS", "-aec", "NODE", "127.0.0.1", str(node.port), *map(str, files)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr  # every C-STORE answered success: the node owns them now
    node.proc.kill()  # before the series went idle: no report yet
    node.proc.wait()
    assert list(received.iterdir()) == []
    again = Node(tmp_path, dest, idle=0.5, spool=node.spool)
    assert wait_for(lambda: len(list(received.iterdir())) == 1)
    time.sleep(2)  # nothing more arrives
    assert len(list(received.iterdir())) == 1
    code, out, err = again.stop()
    assert code == 0 and "resuming series" in err
    sr = pydicom.dcmread(next(received.iterdir()))
    refs = [i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            for i in [c for c in sr.ContentSequence if c.ConceptNameCodeSequence[0].CodeMeaning == "Image Library"][0]
            .ContentSequence[0].ContentSequence]
    assert sorted(refs) == sorted(pydicom.dcmread(f).SOPInstanceUID for f in files)  # nothing lost
    # a third start finds nothing to do
    third = Node(tmp_path, dest, idle=0.5, spool=node.spool)
    time.sleep(1.5)
    code, out, err = third.stop()
    assert len(list(received.iterdir())) == 1 and "resuming" not in err


def test_orthanc_sends_a_study_and_gets_the_sr_back_under_it(tmp_path):
    exe = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not os.path.exists(exe):
        pytest.skip("Orthanc is not installed (scripts/install-deps.sh test installs it)")
    http, dicom, node_port = free_port(), free_port(), free_port()
    config = {"Name": "medinfer-node-test", "StorageDirectory": str(tmp_path / "db"), "IndexDirectory": str(tmp_path / "db"),
              "HttpPort": http, "DicomPort": dicom, "DicomAet": "ORTHANC", "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "Plugins": [], "DicomCheckCalledAet": False,
              "DicomModalities": {"medinfer": ["NODE", "127.0.0.1", node_port]}}
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    orthanc = subprocess.Popen([exe, str(tmp_path / "orthanc.json")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{http}"

    def rest(path, data=None):
        req = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())
    try:
        assert wait_for(lambda: subprocess.run(["curl", "-sf", url + "/system"], capture_output=True).returncode == 0, 30)
        files = write_series(tmp_path / "series", 12)
        study_id = None
        for f in files:
            study_id = rest("/instances", f.read_bytes())["ParentStudy"]
        node = Node.__new__(Node)
        node.port = node_port
        node.spool = tmp_path / "spool"
        node.proc = subprocess.Popen([str(NODE), "--model", str(DEMO), "--aet", "NODE", "--port", str(node_port),
                                      "--allow-aet", "ORTHANC", "--spool", str(node.spool), "--destination",
                                      f"ORTHANC@127.0.0.1:{dicom}", "--series-idle-seconds", "1"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert node.proc.stdout.readline().startswith("ready")
        job = rest("/modalities/medinfer/store", json.dumps({"Resources": [study_id], "Synchronous": True}).encode())
        assert job.get("InstancesCount", 12) == 12, job

        def sr_found():
            found = rest("/tools/find", json.dumps({"Level": "Series", "Query": {"StudyInstanceUID": STUDY,
                                                                                "Modality": "SR"}}).encode())
            return found
        assert wait_for(sr_found, 60)
        series = sr_found()
        assert rest(f"/series/{series[0]}")["ParentStudy"] == study_id  # filed under the source study
        code, _, err = node.stop()
        assert code == 0, err
    finally:
        orthanc.terminate()
        orthanc.wait(timeout=30)


def test_configuration_file_environment_and_errors(tmp_path):
    good = tmp_path / "node.json"
    good.write_text(json.dumps({"model": str(DEMO), "aet": "NODE", "port": 11113, "allow_aet": ["PACS", "CT1"],
                                "spool": str(tmp_path / "spool"), "series_idle_seconds": 2.5}))
    r = subprocess.run([str(NODE), "--config", str(good), "--check-config"], capture_output=True, text=True)
    cfg = json.loads(r.stdout)
    assert r.returncode == 0 and cfg["allow_aet"] == ["PACS", "CT1"] and cfg["series_idle_seconds"] == 2.5
    r = subprocess.run([str(NODE), "--config", str(good), "--port", "11114", "--check-config"], capture_output=True,
                       text=True, env={**os.environ, "MEDINFER_NODE_PORT": "11115", "MEDINFER_NODE_AET": "ENVAET"})
    cfg = json.loads(r.stdout)
    assert cfg["port"] == 11114 and cfg["aet"] == "ENVAET"  # the command line, then the environment, win
    for config, env, expected in [
            ({"model": str(DEMO), "spool": "s", "allow_aet": "PACS", "prot": 1}, {}, "prot: unknown key"),
            ({"model": str(DEMO), "spool": "s", "allow_aet": "PACS", "port": 70000}, {}, "port: expected an integer 1..65535"),
            ({"model": str(DEMO), "spool": "s"}, {}, "allow_aet: required"),
            ({"model": str(DEMO), "spool": "s", "allow_aet": "A_VERY_LONG_AE_TITLE"}, {}, "longer than an AE title"),
            ({"model": str(DEMO), "spool": "s", "allow_aet": "PACS", "destination": "nowhere"}, {}, "AET@HOST:PORT"),
            ({"model": str(DEMO), "spool": "s", "allow_aet": "PACS"}, {"MEDINFER_NODE_SERIES_IDLE_SECONDS": "soon"},
             "$MEDINFER_NODE_SERIES_IDLE_SECONDS: series_idle_seconds")]:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(config))
        r = subprocess.run([str(NODE), "--config", str(bad), "--check-config"], capture_output=True, text=True,
                           env={**os.environ, **env})
        assert r.returncode == 2 and expected in r.stderr, (config, r.stderr)


def test_fhir_bundles_are_written_too(tmp_path, destination):
    import jsonschema
    dest, received = destination
    files = write_series(tmp_path / "series", 6)
    port = free_port()
    proc = subprocess.Popen([str(NODE), "--model", str(DEMO), "--aet", "NODE", "--port", str(port), "--allow-aet", "PACS",
                             "--spool", str(tmp_path / "spool"), "--destination", dest, "--series-idle-seconds", "0.5",
                             "--fhir-dir", str(tmp_path / "fhir"), "--sr-dir", str(tmp_path / "sr")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("ready")
    assert subprocess.run(["storescu", "-aet", "PACS", "-aec", "NODE", "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True).returncode == 0
    bundle_path = tmp_path / "fhir" / (STUDY + ".1.fhir.json")
    assert wait_for(bundle_path.exists)
    jsonschema.validate(json.loads(bundle_path.read_text()), json.loads((HERE / "fhir_r4_subset.schema.json").read_text()))
    assert (tmp_path / "sr" / (STUDY + ".1.sr.dcm")).exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_the_release_trigger_predicts_when_the_association_ends(tmp_path, destination):
    """--trigger release: a series sent in one association is complete when it is released, long
    before the (here 600 s) idle time."""
    dest, received = destination
    files = write_series(tmp_path / "series", 8)
    port = free_port()
    proc = subprocess.Popen([str(NODE), "--model", str(DEMO), "--aet", "NODE", "--port", str(port), "--allow-aet", "PACS",
                             "--spool", str(tmp_path / "spool"), "--destination", dest, "--series-idle-seconds", "600",
                             "--trigger", "release"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("ready")
    t0 = time.time()
    assert subprocess.run(["storescu", "-aet", "PACS", "-aec", "NODE", "127.0.0.1", str(port), *map(str, files)],
                          capture_output=True).returncode == 0
    assert wait_for(lambda: len(list(received.iterdir())) == 1, 30) and time.time() - t0 < 30
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    r = subprocess.run([str(NODE), "--model", str(DEMO), "--allow-aet", "PACS", "--spool", "s", "--trigger", "soon",
                        "--check-config"], capture_output=True, text=True)
    assert r.returncode == 2 and "trigger: expected idle or release" in r.stderr
