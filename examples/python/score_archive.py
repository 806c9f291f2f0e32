#!/usr/bin/env python3
"""Scores every DICOM image under a directory tree across a Dask distributed cluster.

    score_archive.py --model models/demo --out scores.csv ARCHIVE                  # 2 local worker processes
    score_archive.py --model models/demo --out scores.csv --workers 0 ARCHIVE      # one process, no Dask
    score_archive.py --model /shared/models/demo --out scores.csv --scheduler tcp://10.0.0.5:8786 \\
        --audit-dir /shared/audit --audit-key /shared/audit.key /shared/archive   # a real cluster

The archive is indexed once here (medinfer.dicom.scan_directory) and partitioned by series: one task
per series, so a series' files are read by one worker. Each worker process opens one Pipeline the first
time it gets a task and keeps it (its model, its audit log) for every later task; with --audit-dir each
worker writes its own chained audit log there (worker-<name>.jsonl, keyed by --audit-key), and at the
end every worker's pipeline is closed (each chain gets its closing checkpoint) and every log is
verified. Results are gathered into one CSV, one row per file, sorted by path: the same rows, in the
same order, whatever the cluster. On a real cluster the model directory, the archive, the audit
directory and the key must be at the same paths on every worker (a shared filesystem).
Exit status: 0 when every file was scored and every audit log verified, 1 otherwise (no DICOM image
under ARCHIVE included), 2 usage.
"""
from __future__ import annotations

import argparse
import csv
import os
import pathlib
import sys
from typing import Any, Dict, List, Optional

import medinfer

COLUMNS = ["path", "series_instance_uid", "sop_instance_uid", "label", "probability", "raw_score", "tier",
           "escalate", "indeterminate", "error"]


def series_tasks(index: Dict[str, Any]) -> List[List[str]]:
    """The indexed archive's files, one list per series (files that are not DICOM images are left out)."""
    return [list(series["files"]) for study in index["studies"] for series in study["series"]]


def rows_of(pipeline: medinfer.Pipeline, files: List[str]) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    for path, out in zip(files, pipeline.predict_many(files, workers=1)):
        row: Dict[str, Any] = {"path": path}
        if isinstance(out, medinfer.Result):
            row.update(series_instance_uid=out.series_instance_uid, sop_instance_uid=out.sop_instance_uid,
                       label=out.label, probability=repr(out.probability), raw_score=repr(out.raw_score),
                       tier=out.tier, escalate=out.escalate, indeterminate=out.indeterminate, error="")
        else:
            row["error"] = f"{out.code}: {out}"
        rows.append(row)
    return rows


def open_pipeline(model: str, audit_log: Optional[str], audit_key: Optional[str]) -> medinfer.Pipeline:
    options = medinfer.PipelineOptions()
    options.engine.intra_op_threads = 1  # one task per worker thread: more would oversubscribe the cores
    return medinfer.Pipeline.open(model, options, audit_log=audit_log, audit_key_file=audit_key)


def score_on_worker(files: List[str], model: str, audit_dir: Optional[str], audit_key: Optional[str]) -> List[Dict[str, Any]]:
    """A Dask task: this worker's pipeline (opened on its first task) scores one series."""
    from distributed import get_worker
    worker = get_worker()
    pipeline = getattr(worker, "medinfer_pipeline", None)
    if pipeline is None:
        log = os.path.join(audit_dir, f"worker-{worker.name}.jsonl") if audit_dir else None
        pipeline = open_pipeline(model, log, audit_key)
        setattr(worker, "medinfer_pipeline", pipeline)  # kept by the worker process for its later tasks
        setattr(worker, "medinfer_audit_log", log)
    return rows_of(pipeline, files)


def close_on_worker(dask_worker: Any) -> Optional[str]:
    """Closes this worker's pipeline (its chain gets the closing checkpoint); returns its audit log."""
    pipeline = getattr(dask_worker, "medinfer_pipeline", None)
    if pipeline is None:
        return None
    pipeline.close()
    setattr(dask_worker, "medinfer_pipeline", None)
    return getattr(dask_worker, "medinfer_audit_log", None)


def score(tasks: List[List[str]], model: str, workers: int, scheduler: Optional[str], audit_dir: Optional[str],
          audit_key: Optional[str]) -> tuple[List[Dict[str, Any]], List[str]]:
    """(rows sorted by path, the audit logs written) for the series' files in `tasks`."""
    if scheduler is None and workers == 0:
        log = os.path.join(audit_dir, "worker-0.jsonl") if audit_dir else None
        with open_pipeline(model, log, audit_key) as pipeline:
            rows = [row for files in tasks for row in rows_of(pipeline, files)]
        return sorted(rows, key=lambda r: str(r["path"])), [log] if log else []
    from distributed import Client, LocalCluster
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    with Client(scheduler or cluster) as client:  # type: ignore[no-untyped-call]
        futures = client.map(score_on_worker, tasks, model=model, audit_dir=audit_dir, audit_key=audit_key,
                             pure=False)
        rows = [row for part in client.gather(futures) for row in part]
        logs = [str(log) for log in client.run(close_on_worker).values() if log]
    if cluster is not None:
        cluster.close()  # type: ignore[no-untyped-call]
    return sorted(rows, key=lambda r: str(r["path"])), sorted(logs)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", type=pathlib.Path, help="the directory tree to score")
    parser.add_argument("--model", required=True, help="the model package directory")
    parser.add_argument("--out", required=True, type=pathlib.Path, help="the CSV to write")
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes (0: no Dask, this process)")
    parser.add_argument("--scheduler", help="a Dask scheduler's address (tcp://HOST:8786): use that cluster")
    parser.add_argument("--audit-dir", help="one chained audit log per worker in this directory")
    parser.add_argument("--audit-key", help="the audit chain's key file (with --audit-dir)")
    args = parser.parse_args(argv)
    if bool(args.audit_dir) != bool(args.audit_key):
        parser.error("--audit-dir and --audit-key go together")
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    if args.audit_dir:
        os.makedirs(args.audit_dir, exist_ok=True)
    index = medinfer.dicom.scan_directory(args.archive)  # the library's rule: recursive, links followed
    tasks = series_tasks(index)
    if not tasks:
        print(f"score_archive.py: no DICOM images under {args.archive} ({index['files_seen']} files seen, "
              f"{len(index['skipped'])} skipped)", file=sys.stderr)
        return 1
    rows, logs = score(tasks, args.model, args.workers, args.scheduler, args.audit_dir, args.audit_key)
    tmp = args.out.with_name(args.out.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, args.out)  # the table appears whole or not at all
    failed = sum(1 for r in rows if r["error"])
    status = 0 if failed == 0 else 1
    for log in logs:
        verdict = medinfer.audit.verify_log(log, args.audit_key)
        print(f"audit {log}: {'ok' if verdict.ok else 'FAILED: ' + verdict.problem} ({verdict.records} records)")
        if not (verdict.ok and verdict.closed):
            status = 1
    print(f"scored {len(rows) - failed} of {len(rows)} files into {args.out}; {len(logs)} audit log(s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
