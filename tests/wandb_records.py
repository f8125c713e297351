"""Read an offline W&B run (`run-<id>.wandb`) back: its records are protobufs in LevelDB log
framing (32 KiB blocks, 7-byte chunk headers) after a 7-byte `:W&B` file header."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path

from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def raw_records(path: Path) -> Iterator[bytes]:
    data = Path(path).read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:HEADER])
    assert ident == b":W&B" and magic == 0xBEE1, f"{path}: not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if left < HEADER or (kind == 0 and length == 0):  # block padding
            pos += left
            continue
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


def read_run(run_dir: Path, timeout: float = 120.0) -> dict:
    """`{run, history: [{key: value}], summary: {key: value}, files: [path]}` of an offline run.

    W&B's service process can still be writing the file when `run.finish()` has returned (seen on
    a loaded machine: the synthesis curves, the summary and a table were missing), so this reads
    again until the run's closing `exit` record is there, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        out = _read_records(run_dir)
        if out.pop("exited") or time.monotonic() > deadline:
            assert out["run"] is not None, f"{run_dir}: no run record"
            return out
        time.sleep(0.5)


def _read_records(run_dir: Path) -> dict:
    (path,) = Path(run_dir).glob("run-*.wandb")
    out: dict = {"run": None, "history": [], "summary": {}, "files": [], "exited": False}
    for raw in raw_records(path):
        record = wandb_internal_pb2.Record()
        try:
            record.ParseFromString(raw)
        except DecodeError:  # the last record, half written
            break
        kind = record.WhichOneof("record_type")
        if kind == "exit":
            out["exited"] = True
        elif kind == "run":
            out["run"] = record.run
        elif kind == "history":
            out["history"].append(
                {
                    "/".join(i.nested_key) or i.key: json.loads(i.value_json)
                    for i in record.history.item
                }
            )
        elif kind == "summary":
            for item in record.summary.update:
                out["summary"]["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
        elif kind == "files":
            out["files"] += [f.path for f in record.files.files]
    return out
