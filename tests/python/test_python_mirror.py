"""The Python mirror's remaining C++ areas, each through its Python names: images and volumes borrowed from
numpy without a copy (image.hpp, volume.hpp), Engine and Python backends (engine.hpp), the log handler
(log.hpp), calibration's selection, operating points, conformal and multi-class tools (calibration.hpp),
audit records, sinks and chains (audit.hpp), predict_many's Inputs, ManyOptions and CancelToken
(pipeline.hpp), the report module (report.hpp), de-identification options (deidentify.hpp), and one
binding file per public header."""
import copy
import gc
import json
import pathlib
import shutil
import socket
import threading
import weakref
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import medinfer

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def files(study):
    directory, rows = study
    return [directory / r["file"] for r in rows]


def data_pointer(a):
    return np.asarray(a).__array_interface__["data"][0]


# ---- one binding file per public header -------------------------------------------------------------

def test_every_public_header_has_its_binding_file():
    umbrellas = {"medinfer", "model", "export", "version"}  # include others, or macros only
    headers = {p.stem for p in (ROOT / "include" / "medinfer").glob("*.hpp")} - umbrellas
    bindings = {p.stem for p in (ROOT / "bindings" / "python" / "src").glob("*.cpp")}
    assert headers - bindings == set(), f"headers without a binding file: {sorted(headers - bindings)}"
    for header in sorted(headers):
        text = (ROOT / "bindings" / "python" / "src" / f"{header}.cpp").read_text()
        assert f"medinfer/{header}.hpp" in text, f"{header}.cpp does not say it mirrors medinfer/{header}.hpp"


# ---- image.hpp / volume.hpp: arrays in without a copy ---------------------------------------------------

@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"])
def test_a_contiguous_array_is_borrowed_not_copied(dtype):
    a = (np.arange(48).reshape(6, 8) % 100).astype(dtype)
    image = medinfer.Image(a, spacing=(0.5, 0.7))
    assert image.borrowed and image.pixel_type == dtype
    assert (image.width, image.height, image.channels) == (8, 6, 1)
    view = np.asarray(image)
    assert data_pointer(view) == data_pointer(a)  # the library reads the array's own memory
    assert not view.flags.writeable  # the library never writes to it
    np.testing.assert_array_equal(view, a)
    assert tuple(image.spacing) == (0.5, 0.7)


def test_a_borrowed_array_is_kept_alive_by_the_image():
    a = np.full((4, 5), 7, dtype=np.float32)
    alive = weakref.ref(a)
    pointer = data_pointer(a)
    image = medinfer.Image(a)
    del a
    gc.collect()
    assert alive() is not None  # the image holds the array
    assert data_pointer(image) == pointer and np.asarray(image).sum() == 140
    del image
    gc.collect()
    assert alive() is None  # released with the image


def test_other_arrays_are_copied_once():
    a = np.arange(64, dtype=np.float32).reshape(8, 8)
    strided = medinfer.Image(a[:, ::2])
    assert not np.shares_memory(np.asarray(strided), a)
    np.testing.assert_array_equal(np.asarray(strided), a[:, ::2])
    # A type the library lacks: one copy to the nearest type holding every value exactly.
    for odd, expected in ((np.ones((3, 3), dtype=bool), "uint8"), (np.full((3, 3), 2**40 + 1, dtype=np.int64), "float64"),
                          (np.ones((3, 3), dtype=np.float16), "float32"), (np.arange(9, dtype=">i2").reshape(3, 3), "int16"),
                          ([[1, 2], [3, 4]], "float64")):
        image = medinfer.Image(odd)
        assert image.pixel_type == expected
        np.testing.assert_array_equal(np.asarray(image), np.asarray(odd))  # no value changed
    for refused in (np.ones((2, 2), complex), np.array([["a", "b"]]), np.array([[object()]])):
        with pytest.raises(medinfer.InvalidArgumentError, match="no pixel type"):
            medinfer.Image(refused)
    rgb = medinfer.Image(np.zeros((4, 5, 3), np.uint8))
    assert rgb.channels == 3 and np.asarray(rgb).shape == (4, 5, 3)
    with pytest.raises(medinfer.InvalidArgumentError, match="Image: expected"):
        medinfer.Image(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(medinfer.InvalidArgumentError, match="spacing"):
        medinfer.Image(np.zeros((2, 2), np.float32), spacing=(0.0, 1.0))


def test_predict_and_preprocess_read_a_borrowed_array_and_leave_it_unchanged(demo_model, files):
    pixels, header = medinfer.dicom.read_instance(files[0])
    image = medinfer.dicom.read_image(files[0])
    assert isinstance(image, medinfer.Image) and not image.borrowed
    np.testing.assert_array_equal(np.asarray(image), pixels)
    mine = np.array(pixels)  # an array the caller owns
    before = mine.copy()
    borrowed = medinfer.Image(mine, spacing=image.spacing)
    assert data_pointer(borrowed) == data_pointer(mine)
    with medinfer.Pipeline.open(demo_model) as p:
        from_file = p.predict(files[0])
        from_image = p.predict(borrowed)
        from_array = p.predict(mine, spacing=image.spacing)
        assert from_image.probability == from_array.probability == from_file.probability
        assert from_image.input_sha256 == from_file.input_sha256
        spec = p.package.manifest["preprocessing"]
    np.testing.assert_array_equal(mine, before)
    t_image = medinfer.preprocess.apply(spec, borrowed)
    t_array = medinfer.preprocess.apply(spec, mine, spacing=image.spacing)
    np.testing.assert_array_equal(t_image, t_array)
    np.testing.assert_array_equal(mine, before)


def test_volumes_are_borrowed_too():
    voxels = np.random.default_rng(3).normal(size=(6, 16, 12)).astype(np.float32)
    volume = medinfer.Volume(voxels, spacing=(0.8, 0.8, 2.0))
    assert volume.borrowed and (volume.width, volume.height, volume.depth) == (12, 16, 6)
    assert data_pointer(volume) == data_pointer(voxels)
    np.testing.assert_array_equal(np.asarray(volume.slice(2)), voxels[2])
    spec = [{"step": "resample", "spacing_mm": [1.6, 1.6, 2.0]}]
    a = medinfer.preprocess.apply_volume(spec, volume)
    b = medinfer.preprocess.apply_volume(spec, voxels, spacing=(0.8, 0.8, 2.0))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(medinfer.InvalidArgumentError, match="3-D"):
        medinfer.Volume(np.zeros((4, 4), np.float32))


# ---- engine.hpp: Engine and Python backends -------------------------------------------------------------

def test_engine_runs_the_model_the_pipeline_runs(demo_model, files):
    package = medinfer.package.verify_package(demo_model)
    engine = medinfer.Engine.open(package, medinfer.EngineOptions())
    assert engine.description.startswith("torchscript")
    with medinfer.Pipeline.open(demo_model) as p:
        batch = np.concatenate([p.prepare(f) for f in files[:3]])
        logits = engine.run(batch)
        assert logits.shape == (3, 1) and logits.dtype == np.float32
        for f, z in zip(files[:3], logits[:, 0]):
            assert p.predict(f).raw_score == pytest.approx(float(z), abs=1e-5)
    with pytest.raises(medinfer.InvalidArgumentError, match="shape"):
        engine.run(np.zeros((1, 1, 32, 32), np.float32))
    assert "torchscript" in medinfer.backend_formats()


def python_backend_package(demo_model, tmp_path, fmt, weight="2.5"):
    manifest = json.loads((demo_model / "manifest.json").read_text())
    manifest["model"] = {"file": "weights.txt", "format": fmt}
    manifest["calibration"] = {"method": "temperature", "temperature": 1.0}
    manifest["files"] = {}
    src = tmp_path / f"src-{fmt}"
    src.mkdir()
    (src / "weights.txt").write_text(weight)
    (src / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / f"pkg-{fmt}"
    medinfer.package.create(src / "weights.txt", src / "manifest.json", out)
    return out


class MeanModel:
    """A 'model' in Python: the logit is weight x the mean of the input."""

    def __init__(self, weight):
        self.weight = weight
        self.calls = []

    def run(self, batch):
        assert not batch.flags.writeable
        self.calls.append(batch.shape[0])
        return (self.weight * batch.reshape(batch.shape[0], -1).mean(axis=1)).reshape(-1, 1)

    def description(self):
        return f"mean x {self.weight} in Python"


def test_a_python_backend_runs_behind_the_whole_pipeline(demo_model, files, tmp_path):
    models = []

    def factory(package, options):
        assert package.model_format == "python-mean" and options.device == "cpu"
        m = MeanModel(float(package.model_bytes.decode()))
        models.append(m)
        return m

    medinfer.register_backend("python-mean", factory)
    assert "python-mean" in medinfer.backend_formats()
    pkg = python_backend_package(demo_model, tmp_path, "python-mean")
    with medinfer.Pipeline.open(pkg) as p:
        r = p.predict(files[0])
        expected = 2.5 * float(p.prepare(files[0]).mean())
        assert r.raw_score == pytest.approx(expected, rel=1e-5)
        assert r.probability == pytest.approx(1 / (1 + np.exp(-expected)), rel=1e-6)
        many = p.predict_many(files[:6], batch_size=3, workers=2)
        assert all(isinstance(x, medinfer.Result) for x in many)
    assert sum(models[-1].calls) >= 7  # warm-up, predict and the batches all ran in Python
    engine = medinfer.Engine.open(medinfer.package.verify_package(pkg))
    assert engine.description == "mean x 2.5 in Python"


def test_python_backend_errors_are_medinfer_errors(demo_model, files, tmp_path):
    def refuses(package, options):
        raise ValueError("not my format")
    medinfer.register_backend("python-refuses", refuses)
    with pytest.raises(medinfer.ModelIntegrityError, match="not my format"):
        medinfer.Pipeline.open(python_backend_package(demo_model, tmp_path, "python-refuses"))

    kept = []

    def keeps(package, options):
        kept.append(package)
        return MeanModel(1.0)
    medinfer.register_backend("python-keeps", keeps)
    with pytest.raises(medinfer.InvalidArgumentError, match="kept a reference"):
        medinfer.Pipeline.open(python_backend_package(demo_model, tmp_path, "python-keeps"))
    kept.clear()

    class Broken(MeanModel):
        fail = False

        def run(self, batch):
            if Broken.fail:
                raise RuntimeError("the runtime crashed")
            return super().run(batch)
    medinfer.register_backend("python-broken", lambda package, options: Broken(1.0))
    with medinfer.Pipeline.open(python_backend_package(demo_model, tmp_path, "python-broken")) as p:
        Broken.fail = True
        with pytest.raises(medinfer.InternalError, match="the runtime crashed"):
            p.predict(files[0])
    class Hoarder(MeanModel):
        kept = []

        def run(self, batch):
            Hoarder.kept.append(batch)  # a view of the library's tensor, valid during the call only
            return super().run(batch)
    medinfer.register_backend("python-hoards", lambda package, options: Hoarder(1.0))
    with pytest.raises(medinfer.InternalError, match="kept a reference to its input"):
        medinfer.Pipeline.open(python_backend_package(demo_model, tmp_path, "python-hoards"))
    Hoarder.kept.clear()
    medinfer.register_backend("python-shape", lambda package, options: type(
        "Wrong", (MeanModel,), {"run": lambda self, b: np.zeros((b.shape[0], 3), np.float32)})(1.0))
    with pytest.raises(medinfer.InvalidArgumentError):
        medinfer.Pipeline.open(python_backend_package(demo_model, tmp_path, "python-shape"))
    with pytest.raises(medinfer.InvalidArgumentError):
        medinfer.register_backend("", refuses)


# ---- log.hpp ------------------------------------------------------------------------------------------------

def test_the_log_handler_receives_the_library_messages(demo_model):
    seen = []
    medinfer.set_log_handler(lambda level, message: seen.append((level, message)), medinfer.LogLevel.INFO)
    try:
        medinfer.Pipeline.open(demo_model).close()
    finally:
        medinfer.set_log_handler(None)
    assert seen and all(isinstance(level, medinfer.LogLevel) for level, _ in seen)
    assert any("demo-ct-lesion" in message for _, message in seen)
    count = len(seen)
    medinfer.Pipeline.open(demo_model).close()
    assert len(seen) == count  # removed: nothing more arrives

    def raises(level, message):
        raise RuntimeError("a handler that fails")
    medinfer.set_log_handler(raises, medinfer.LogLevel.DEBUG)
    try:
        medinfer.Pipeline.open(demo_model).close()  # the library carries on
    finally:
        medinfer.set_log_handler(None)


# ---- calibration.hpp ----------------------------------------------------------------------------------------

def labelled(n=600, seed=5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scores = rng.normal(loc=np.where(y == 1, 1.2, -1.2), scale=1.0)
    return scores.tolist(), y.tolist()


def test_calibration_selection_operating_points_and_conformal():
    scores, labels = labelled()
    sel = medinfer.calibration.select_method(scores, labels)
    assert sel.method in list(medinfer.calibration.Method) and sel.folds == 5
    assert sel.mean_ece[str(sel.method)] == min(sel.mean_ece.values())
    cal = medinfer.calibration.Calibrator.fit(sel.method, scores, labels)
    p = cal.apply_many(scores)
    op = medinfer.calibration.sensitivity_operating_point(p, labels, 0.9, 0.05)
    y, pp = np.array(labels), np.array(p)
    sens = ((pp >= op.threshold_empirical) & (y == 1)).sum() / (y == 1).sum()
    assert sens >= 0.9 and op.at_empirical.sensitivity == pytest.approx(sens)
    assert op.guaranteed and op.threshold_guaranteed <= op.threshold_empirical
    conf = medinfer.calibration.conformal_threshold(p, labels, 0.1)
    nonconformity = np.sort(1 - np.where(y == 1, pp, 1 - pp))
    k = int(np.ceil((len(p) + 1) * 0.9))
    assert conf.qhat == pytest.approx(nonconformity[k - 1])
    assert conf.empirical_coverage >= 0.9


def test_calibration_factories_package_forms_and_multiclass():
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax
    c = medinfer.calibration.Calibrator.platt(-1.5, 0.2)
    assert c.apply(1.0) == pytest.approx(1 / (1 + np.exp(-1.5 + 0.2)))
    assert medinfer.calibration.Calibrator().apply(0.0) == 0.5
    with pytest.raises(medinfer.InvalidArgumentError):
        medinfer.calibration.Calibrator.temperature(0.0)
    cals = medinfer.calibration.parse_calibration([{"method": "temperature", "temperature": 2.0}] * 2,
                                                  medinfer.Task.MULTI_LABEL, 2)
    assert len(cals) == 2 and json.loads(medinfer.calibration.to_json(cals, medinfer.Task.MULTI_LABEL))[1]["temperature"] == 2.0
    assert medinfer.calibration.probabilities(cals, medinfer.Task.MULTI_LABEL, [0.0, 2.0]) == pytest.approx(
        [0.5, 1 / (1 + np.exp(-1.0))])
    with pytest.raises(medinfer.InvalidArgumentError, match="where-it-was"):
        medinfer.calibration.check_for_task(cals, medinfer.Task.BINARY, 1, "where-it-was")
    rng = np.random.default_rng(2)
    classes = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 3.0 * np.eye(3)[classes]
    t = medinfer.calibration.fit_multiclass_temperature(logits.tolist(), classes.tolist())
    nll = lambda T: -log_softmax(logits / T, axis=1)[np.arange(300), classes].mean()  # noqa: E731
    ref = minimize_scalar(nll, bounds=(np.exp(-5), np.exp(5)), method="bounded")
    assert t.parameters[0] == pytest.approx(ref.x, rel=1e-3)
    assert medinfer.calibration.multiclass_nll(logits.tolist(), classes.tolist(), t.parameters[0]) == pytest.approx(
        ref.fun, rel=1e-6)


def test_the_reliability_png_is_written(tmp_path):
    scores, labels = labelled(200)
    before = medinfer.calibration.compute_metrics([1 / (1 + np.exp(-s)) for s in scores], labels)
    out = tmp_path / "r.png"
    medinfer.calibration.write_reliability_png(out, before, title="demo")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(medinfer.IoError):
        medinfer.calibration.write_reliability_png(tmp_path / "no" / "dir.png", before)


# ---- audit.hpp ----------------------------------------------------------------------------------------------

def test_a_callback_sink_receives_every_record_and_the_serialisers_agree(demo_model, files, tmp_path):
    records = []
    options = medinfer.PipelineOptions()
    options.audit_sink = medinfer.audit.CallbackSink.create(records.append)
    options.pseudonym_key = b"k" * 32
    options.user_id = "dr-who"
    with medinfer.Pipeline.open(demo_model, options) as p:
        r = p.predict(files[0])
        with pytest.raises(medinfer.NotFoundError):
            p.predict(tmp_path / "missing.dcm")
        p.record_event(medinfer.audit.EventType.CONFIGURATION_CHANGE, "threshold reviewed")
    kinds = [rec.event for rec in records]
    assert kinds[0] == medinfer.audit.EventType.MODEL_OPENED
    inference = [rec for rec in records if rec.event == medinfer.audit.EventType.INFERENCE]
    ok, failed = inference
    assert ok.outcome == medinfer.audit.Outcome.OK and ok.finding.probability == r.probability
    assert ok.actor.user_id == "dr-who" and ok.input_sha256 == r.input_sha256
    assert ok.study_ref == medinfer.dicom.pseudonymize(r.study_instance_uid, "k" * 32) or len(ok.study_ref) == 64
    assert failed.outcome == medinfer.audit.Outcome.ERROR and failed.error_code == medinfer.ErrorCode.NOT_FOUND
    assert "missing.dcm" not in failed.error_message  # no paths in audit records
    assert records[-1].event == medinfer.audit.EventType.CONFIGURATION_CHANGE and records[-1].detail == "threshold reviewed"
    line = medinfer.audit.to_json_line(ok)
    back = medinfer.audit.from_json_line(line)
    assert medinfer.audit.to_json_line(back) == line and json.loads(line)["event"] == "inference"
    assert ET.fromstring(medinfer.audit.to_atna_xml(ok)).tag == "AuditMessage"
    assert json.loads(medinfer.audit.to_fhir_audit_event(ok))["resourceType"] == "AuditEvent"
    with pytest.raises(medinfer.InvalidArgumentError):
        medinfer.audit.from_json_line('{"event": 3}')


def test_a_failing_callback_sink_withholds_the_result(demo_model, files):
    def refuse(record):
        if record.event == medinfer.audit.EventType.INFERENCE:
            raise OSError("the audit store is down")
    options = medinfer.PipelineOptions()
    options.audit_sink = medinfer.audit.CallbackSink.create(refuse)
    with medinfer.Pipeline.open(demo_model, options) as p:
        with pytest.raises(medinfer.AuditFailedError):
            p.predict(files[0])


def test_file_and_chained_sinks_with_rotation_witness_and_verification(tmp_path):
    plain = medinfer.audit.FileSink.open(tmp_path / "plain.jsonl")
    rec = medinfer.audit.Record()
    rec.event = medinfer.audit.EventType.OVERRIDE
    rec.detail = "policy override"
    plain.write(rec)
    assert json.loads((tmp_path / "plain.jsonl").read_text())["detail"] == "policy override"

    keys = medinfer.audit.Keyring({1: b"a" * 32})
    heads = []
    chain_options = medinfer.audit.ChainOptions()
    chain_options.checkpoint_every = 2
    chain_options.witness = heads.append
    log = tmp_path / "chain.jsonl"
    with medinfer.audit.ChainedFileSink.open(log, keys, chain_options) as chain:
        for i in range(3):
            rec.detail = f"event {i}"
            chain.write(rec)
        chain.rotate_key(2, b"b" * 32)
        chain.write(rec)
    assert chain.written >= 6 and chain.dropped == 0
    assert [h.reason for h in heads][-1] == "close" and all(isinstance(h, medinfer.audit.WitnessHead) for h in heads)
    both = medinfer.audit.Keyring({1: b"a" * 32, 2: b"b" * 32})
    reports = []
    result = medinfer.audit.verify_log(log, both, report_to=medinfer.audit.CallbackSink.create(reports.append))
    assert result.ok and result.closed, result
    assert reports[0].event == medinfer.audit.EventType.LOG_VERIFIED
    assert not medinfer.audit.verify_log(log, keys)  # the rotated key is missing
    lines = log.read_text().splitlines()
    lines[1] = lines[1].replace("event 1", "event X")
    log.write_text("\n".join(lines) + "\n")
    bad = medinfer.audit.verify_log(log, both)
    assert not bad.ok and bad.first_bad_index == 1
    assert len(medinfer.audit.derive_pseudonym_key(both)) == 64  # hex of an HMAC-SHA256


def test_open_log_and_a_witness_file(tmp_path):
    (tmp_path / "key").write_text("00" * 16 + "\n")
    request = medinfer.audit.LogRequest()
    request.path = tmp_path / "audit.jsonl"
    request.key_file = tmp_path / "key"
    request.key_from_environment = False
    request.witness_path = tmp_path / "witness.jsonl"
    opened = medinfer.audit.open_log(request)
    assert opened.chain is not None and len(opened.pseudonym_key) == 64
    opened.sink.write(medinfer.audit.Record())
    opened.chain.close()
    result = medinfer.audit.verify_log_with_witness(tmp_path / "audit.jsonl", tmp_path / "key", tmp_path / "witness.jsonl")
    assert result.ok, result
    witness = medinfer.audit.witness_file(tmp_path / "w2.jsonl")
    assert callable(witness)


def test_a_syslog_sink_sends_rfc5424_over_udp():
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(10)
    sink = medinfer.audit.SyslogSink.open("127.0.0.1", server.getsockname()[1], "udp", "medinfer-test")
    rec = medinfer.audit.Record()
    rec.detail = "over syslog"
    sink.write(rec)
    message = server.recv(65536).decode()
    assert message.startswith("<110>1 ") and "medinfer-test" in message and "over syslog" in message
    with pytest.raises(medinfer.InvalidArgumentError, match="transport"):
        medinfer.audit.SyslogSink.open("127.0.0.1", 514, "carrier-pigeon")


# ---- pipeline.hpp: Inputs, ManyOptions, CancelToken ----------------------------------------------------------

def test_predict_many_takes_inputs_bytes_and_arrays(demo_model, files):
    with medinfer.Pipeline.open(demo_model) as p:
        expected = [p.predict(f).probability for f in files[:3]]
        image = medinfer.dicom.read_image(files[2])
        inputs = [medinfer.Input.file(files[0]), files[1].read_bytes(), image]
        out = p.predict_many(inputs, workers=2)
        assert [r.probability for r in out] == expected
        named = medinfer.Input.dicom(files[0].read_bytes(), "upload-1")
        named.request_id = "req-42"
        assert (named.kind, named.path) == ("dicom_bytes", "upload-1")
        assert medinfer.Input.pixels(np.asarray(image)).image.borrowed
        bad = p.predict_many([b"not dicom", files[0]])
        assert isinstance(bad[0], medinfer.InvalidDicomError) and isinstance(bad[1], medinfer.Result)


def test_a_cancel_token_stops_predict_many_and_on_outcome_streams(demo_model, files):
    with medinfer.Pipeline.open(demo_model) as p:
        token = medinfer.CancelToken()
        token.cancel()
        out = p.predict_many(files[:5], cancel=token)
        assert token.cancelled and all(isinstance(x, medinfer.CancelledError) for x in out)

        token = medinfer.CancelToken()
        seen = []

        def stop_after_two(done, total):
            if done == 2:
                token.cancel()
        out = p.predict_many(files * 4, workers=1, batch_size=1, cancel=token, progress=stop_after_two)
        assert any(isinstance(x, medinfer.CancelledError) for x in out)
        assert isinstance(out[0], medinfer.Result)

        streamed = []
        lock = threading.Lock()

        def collect(outcome):
            with lock:
                streamed.append((outcome.index, outcome.ok(), outcome.result, outcome.error))
        assert p.predict_many(files[:4] + [b"junk"], on_outcome=collect) == []
        assert sorted(i for i, *_ in streamed) == [0, 1, 2, 3, 4]
        last = [s for s in streamed if s[0] == 4][0]
        assert not last[1] and isinstance(last[3], medinfer.InvalidDicomError) and last[2] is None

        options = medinfer.ManyOptions()
        options.workers = 1
        options.batch_size = 2
        options.ordered = False
        same = copy.copy(options)
        assert same.batch_size == 2 and not same.ordered
        assert len(p.predict_many(files[:3], options=options)) == 3
        series = p.predict_series([files[0].parent], options=options)
        assert series.slices >= 1

        def fail(outcome):
            raise KeyError("stop here")
        with pytest.raises(KeyError):
            p.predict_many(files[:3], on_outcome=fail)


# ---- report.hpp and deidentify.hpp ----------------------------------------------------------------------------

def test_the_report_module_mirrors_report_hpp(demo_model, files):
    import pydicom
    with medinfer.Pipeline.open(demo_model) as p:
        r = p.predict(files[0])
        options = medinfer.report.ReportOptions()
        options.label_codes = medinfer.report.label_codes(p.package)
        options.series_description = "from Python"
        options.fhir_subject = "Patient/7"
        sr = medinfer.report.structured_report(r, [files[0]], options)
        assert isinstance(sr, medinfer.report.StructuredReport) and sr.study_instance_uid == r.study_instance_uid
        import io
        ds = pydicom.dcmread(io.BytesIO(sr.bytes))
        assert ds.SOPInstanceUID == sr.sop_instance_uid and ds.SeriesDescription == "from Python"
        bundle = json.loads(medinfer.report.fhir_bundle(r, options))
        assert bundle["resourceType"] == "Bundle"
        assert any(e["resource"].get("subject", {}).get("reference") == "Patient/7" for e in bundle["entry"])
        with pytest.raises(medinfer.InvalidArgumentError):
            medinfer.report.structured_report(p.predict(np.zeros((8, 8), np.float32)), [files[0]])


def test_deidentify_options_and_pseudonyms(tmp_path, files):
    import pydicom
    options = medinfer.dicom.DeidentifyOptions("a key of at least sixteen bytes", patient_name="STUDY^SUBJECT")
    report = medinfer.dicom.deidentify_file(files[0], tmp_path / "anon.dcm", options)
    assert isinstance(report, medinfer.dicom.DeidentifyReport) and report.uids_replaced >= 3
    assert str(pydicom.dcmread(tmp_path / "anon.dcm").PatientName) == "STUDY^SUBJECT"
    assert "<" in repr(options) and "sixteen" not in repr(options)  # the key is never shown
    assert len(medinfer.dicom.pseudonymize("12345", "a key of at least sixteen bytes")) == 64
    with pytest.raises(medinfer.InvalidArgumentError):
        medinfer.dicom.deidentify_file(files[0], tmp_path / "x.dcm", "short")
