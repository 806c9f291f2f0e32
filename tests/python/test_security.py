"""Issue 13's package recipes through the CLI, as a hostile tester ran them: a stripped signature under a
pinned key, keys that are not public keys, unlisted files, a linked manifest, duplicated JSON keys."""
import json
import os
import shutil
import subprocess

import pytest


def run(cli, *args):
    return subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture()
def signed(cli, demo_model, tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(demo_model, pkg)
    assert run(cli, "package", "keygen", "--out", tmp_path / "a").returncode == 0
    assert run(cli, "package", "sign", pkg, "--key", tmp_path / "a").returncode == 0
    return pkg, tmp_path / "a.pub", tmp_path / "a"


def test_stripping_the_signature_does_not_defeat_a_pinned_key(cli, signed, study):
    pkg, pub, _ = signed
    path = study[0] / study[1][0]["file"]
    m = json.loads((pkg / "manifest.json").read_text())
    m["risk"]["escalation_threshold"] = 0.99
    (pkg / "manifest.json").write_text(json.dumps(m, indent=2))
    (pkg / "manifest.sig").unlink()
    r = run(cli, "predict", "--model", pkg, "--trusted-key", pub, path)
    assert r.returncode == 4  # the package is refused (before: opened, no warning)
    assert json.loads(r.stdout)["error"]["code"] == "kModelIntegrity" and "not signed" in r.stdout
    r = run(cli, "predict", "--model", pkg, "--trusted-key", pub, "--allow-unsigned", path)
    assert r.returncode == 0 and "not signed" in r.stderr
    r = run(cli, "package", "verify", pkg, "--trusted-key", pub)
    assert r.returncode == 1 and json.loads(r.stdout)["error"]["code"] == "kModelIntegrity"


def test_with_no_key_pinned_an_unverified_package_opens_with_a_warning_on_stderr(cli, signed, study):
    pkg, _, _ = signed
    r = run(cli, "predict", "--model", pkg, study[0] / study[1][0]["file"])
    assert r.returncode == 0 and "not verified" in r.stderr  # before: silent


def test_a_trusted_key_argument_that_is_not_a_public_key_is_an_error_saying_which(cli, signed, tmp_path, study):
    pkg, _, private = signed
    (tmp_path / "empty.pub").write_text("")
    path = study[0] / study[1][0]["file"]
    for key, what in ((tmp_path, "a directory"), (tmp_path / "empty.pub", "not an Ed25519 public key"),
                      ("/dev/null", "not an Ed25519 public key"), (private, "a private key")):
        for args in (["predict", "--model", pkg, "--trusted-key", key, path],
                     ["package", "verify", pkg, "--trusted-key", key]):
            r = run(cli, *args)
            assert r.returncode == (3 if args[0] == "predict" else 1), (key, args)  # predict: every input failed
            assert what in r.stdout + r.stderr and str(key) in r.stdout + r.stderr, (key, r.stdout, r.stderr)


@pytest.mark.parametrize("extra", ["evil.txt", "other.pt", ".hidden", "passwd-link"])
def test_a_file_the_manifest_does_not_list_is_refused_even_when_signed(cli, signed, extra):
    pkg, pub, _ = signed
    if extra == "passwd-link":
        os.symlink("/etc/passwd", pkg / extra)
    elif extra == "other.pt":
        shutil.copy(pkg / "model.pt", pkg / extra)
    else:
        (pkg / extra).write_text("x")
    r = run(cli, "package", "verify", pkg, "--trusted-key", pub, "--require-signature")
    assert r.returncode == 1
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "kModelIntegrity" and f"'{extra}' is in the package but not listed" in err["message"]


def test_a_manifest_linked_from_outside_the_package_is_refused(cli, signed, tmp_path):
    pkg, pub, _ = signed
    shutil.move(pkg / "manifest.json", tmp_path / "outside.json")
    os.symlink(tmp_path / "outside.json", pkg / "manifest.json")
    r = run(cli, "package", "verify", pkg, "--trusted-key", pub, "--require-signature")
    assert r.returncode == 1 and "symbolic link" in json.loads(r.stdout)["error"]["message"]


def test_duplicated_keys_in_the_manifest_are_refused(cli, demo_model, tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(demo_model, pkg)
    text = (pkg / "manifest.json").read_text()
    at = text.index('"escalation_threshold"')
    (pkg / "manifest.json").write_text(text[:at] + '"escalation_threshold": 0.0, ' + text[at:])
    r = run(cli, "package", "verify", pkg)
    assert r.returncode == 1 and "escalation_threshold: duplicate key" in json.loads(r.stdout)["error"]["message"]


def test_audit_records_name_no_path_and_always_an_actor(cli, demo_model, study, tmp_path):
    pkg = tmp_path / "DOE-JANE-1961" / "model"
    shutil.copytree(demo_model, pkg)
    log = tmp_path / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "USER"}
    r = subprocess.run([cli, "predict", "--model", str(pkg), "--audit-log", str(log), str(study[0] / study[1][0]["file"])],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    assert "DOE-JANE" not in text and str(tmp_path) not in text  # before: model_opened named the directory
    assert all(json.loads(line)["actor"]["user_id"] for line in text.splitlines())  # before: "" without $USER
    r = run(cli, "predict", "--model", pkg, "--audit-log", log, "--audit-user", "u" * 100_000, study[0] / study[1][0]["file"])
    assert r.returncode == 3 and "at most 256" in r.stderr  # every input failed (before: copied into every record)
    assert "u" * 1000 not in log.read_text()


def test_a_writer_killed_mid_run_is_continued_only_through_a_reported_recovery(cli, demo_model, study, tmp_path):
    import time
    directory, rows = study
    files = [str(directory / r["file"]) for r in rows] * 200
    key = tmp_path / "k"
    key.write_text("ab" * 32 + "\n")
    log = tmp_path / "chain.jsonl"
    p = subprocess.Popen([cli, "predict", "--model", str(demo_model), "--audit-log", str(log), "--audit-key", str(key),
                          *files], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or log.read_text().count("\n") < 30):
        time.sleep(0.01)
    p.kill()  # kill -9: no closing checkpoint
    p.wait()
    lines = log.read_text().splitlines()
    assert 30 <= len(lines) < len(files) and '"detail":"close' not in lines[-1]
    r = run(cli, "audit", "verify", log, "--key", key)
    assert r.returncode == 1 and "no closing checkpoint" in r.stdout
    r = run(cli, "predict", "--model", demo_model, "--audit-log", log, "--audit-key", key, files[0])
    assert r.returncode == 0, r.stderr
    r = run(cli, "audit", "verify", log, "--key", key)
    assert r.returncode == 1, r.stdout  # never "OK (closed)" after a crash
    assert f"FAILED at record {len(lines)}" in r.stdout and "recovers a run" in r.stdout


def test_audit_witness_catches_a_deleted_trailing_run_and_a_swapped_log(cli, demo_model, study, tmp_path):
    directory, rows = study
    files = [directory / r["file"] for r in rows[:3]]
    key = tmp_path / "k"
    key.write_text("ab" * 32 + "\n")
    log, witness = tmp_path / "chain.jsonl", tmp_path / "witness.jsonl"
    for _ in range(2):
        r = run(cli, "predict", "--model", demo_model, "--audit-log", log, "--audit-key", key, "--audit-witness", witness,
                *files)
        assert r.returncode == 0, r.stderr
    assert run(cli, "audit", "verify", log, "--key", key, "--witness", witness).returncode == 0
    lines = log.read_text().splitlines(keepends=True)
    first_run = tmp_path / "first-run.jsonl"
    first_run.write_text("".join(lines[:len(lines) // 2]))  # head -n: the first run only
    r = run(cli, "audit", "verify", first_run, "--key", key)
    assert r.returncode == 0 and "(closed)" in r.stdout  # the chain alone cannot tell (documented)
    r = run(cli, "audit", "verify", first_run, "--key", key, "--witness", witness)
    assert r.returncode == 1 and "cut from its end" in r.stdout
    other, other_witness = tmp_path / "other.jsonl", tmp_path / "other-witness.jsonl"
    run(cli, "predict", "--model", demo_model, "--audit-log", other, "--audit-key", key, "--audit-witness",
        other_witness, *files)
    r = run(cli, "audit", "verify", other, "--key", key, "--witness", witness)
    assert r.returncode == 1 and "swapped" in r.stdout
    r = run(cli, "predict", "--model", demo_model, "--audit-log", tmp_path / "plain.jsonl", "--audit-witness", witness,
            *files)
    assert r.returncode == 2  # a witness needs a chained log
