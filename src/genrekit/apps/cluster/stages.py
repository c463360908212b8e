"""The stages of a Ray run, executed in Ray workers: decoding tasks (:func:`decode_batch`) and the
model actors of ``predict`` (:class:`Classify`) and ``embed`` (:class:`Embed`), with the ledger
that charges worker deaths to files (:class:`Ledger`)."""

from __future__ import annotations

import hashlib
import os
from functools import partial
from typing import Callable

from genrekit.apps.cluster.inputs import fingerprint, is_uri, open_input
from genrekit.apps.cluster.output import predict_schema, record_to_row
from genrekit.data.embed import Embedder, error_row
from genrekit.errors import GenrekitError
from genrekit.inference.batch import classify_decoded
from genrekit.inference.predict import error_record, predict_audio
from genrekit.utils import utf8_text

#: A file on which this many workers died becomes an error row instead of killing another.
DEATHS_PER_FILE = 2


def _decoded_schema():
    import pyarrow as pa

    return pa.schema([
        ("path", pa.string()), ("fspath", pa.binary()), ("track", pa.string()), ("label", pa.string()), ("fingerprint", pa.string()),
        ("samples", pa.large_binary()), ("width", pa.int64()), ("starts", pa.list_(pa.float64())),
        ("ends", pa.list_(pa.float64())), ("padded", pa.list_(pa.bool_())), ("duration", pa.float64()),
        ("warnings", pa.list_(pa.string())), ("stream", pa.bool_()),
        ("error", pa.string()), ("node", pa.string()),
    ])


def real_path(row: dict) -> str:
    """The file a row names: its ``fspath`` bytes decoded as ``os.fsdecode`` does (a name that is
    not UTF-8 included), or its ``path`` when it has none."""
    raw = row.get("fspath")
    return row["path"] if raw is None else os.fsdecode(raw)


def with_local_copy(path: str, function: Callable):
    """``function(path)`` for a local path; for a URI, on a temporary local copy (messages name the URI)."""
    if not is_uri(path):
        return function(path)
    import shutil
    import tempfile

    suffix = os.path.splitext(path)[1]
    with tempfile.NamedTemporaryFile(suffix=suffix) as local:
        try:
            with open_input(path) as source:
                shutil.copyfileobj(source, local, 1 << 20)
            local.flush()
        except (OSError, ValueError) as exc:
            return f"{path}: cannot read ({exc})"
        result = function(local.name)
    return result.replace(local.name, path) if isinstance(result, str) else result


class Ledger:
    """Which file each retried batch is on, so that deaths are charged to files (a Ray actor)."""

    def __init__(self):
        self.attempts: dict[str, int] = {}
        self.current: dict[str, str] = {}
        self.deaths: dict[str, int] = {}

    def start(self, key: str) -> int:
        """A batch starts: its attempt number. A careful attempt that did not finish died on its file."""
        self.attempts[key] = self.attempts.get(key, 0) + 1
        lost = self.current.pop(key, None)
        if lost is not None:
            self.deaths[lost] = self.deaths.get(lost, 0) + 1
        return self.attempts[key]

    def begin(self, key: str, path: str) -> int:
        """A careful attempt starts on ``path``: how many workers died on it before."""
        self.current[key] = path
        return self.deaths.get(path, 0)

    def finish(self, key: str) -> None:
        self.current.pop(key, None)


class _Careful:
    """A batch's view of the ledger: first attempts run freely (one ledger call per batch); a
    retry (a worker died on this batch) reports each file before working on it."""

    def __init__(self, ledger, stage: str, paths: list[str]):
        import ray

        self.ray, self.ledger = ray, ledger
        self.key = stage + ":" + hashlib.blake2b("\n".join(paths).encode(), digest_size=12).hexdigest()
        self.on = ledger is not None and ray.get(ledger.start.remote(self.key)) > 1

    def killer(self, path: str) -> str | None:
        """The error of a file on which workers died twice; ``None`` to go ahead with it."""
        if not self.on:
            return None
        deaths = self.ray.get(self.ledger.begin.remote(self.key, path))
        if deaths >= DEATHS_PER_FILE:
            return (f"{path}: the worker processing this file died {deaths} times "
                    "(a crashing decoder or model, or out of memory)")
        return None

    def finish(self) -> None:
        if self.on:
            self.ray.get(self.ledger.finish.remote(self.key))


def decode_batch(batch, *, decode: Callable, ledger=None):
    """Decoding stage: files -> their windows (or an error), one row per file."""
    import numpy as np
    import pyarrow as pa

    rows = batch.to_pylist()
    careful = _Careful(ledger, "decode", [row["path"] for row in rows])
    node = _node_address()
    out = []
    for row in rows:
        path, real = str(row["path"]), real_path(row)
        base = {"path": path, "fspath": row.get("fspath"), "track": row.get("track"), "label": row.get("label"), "samples": None,
                "width": None, "starts": None, "ends": None, "padded": None, "duration": None, "warnings": None,
                "stream": False, "error": None, "fingerprint": None, "node": node}
        if row.get("problem"):
            out.append({**base, "error": f"{path}: {row['problem']}"})
            continue
        killer = careful.killer(path)
        base["fingerprint"] = fingerprint(real)
        if killer:
            out.append({**base, "error": killer})
            continue
        result = with_local_copy(real, decode)
        if result == "stream":
            out.append({**base, "stream": True})
        elif isinstance(result, str):  # messages name the real file; Arrow strings are UTF-8
            out.append({**base, "error": utf8_text(result)})
        else:
            segs, duration, warnings = result
            samples = np.ascontiguousarray(segs.samples, dtype=np.float32)
            out.append({**base, "samples": samples.tobytes(), "width": int(samples.shape[1]),
                        "starts": segs.starts.tolist(), "ends": segs.ends.tolist(),
                        "padded": np.asarray(segs.padded, bool).tolist(), "duration": float(duration),
                        "warnings": [utf8_text(warning) for warning in warnings]})
    careful.finish()
    return pa.Table.from_pylist(out, schema=_decoded_schema())


def _segments_of(row):
    """A decoded row back to ``(Segments, seconds, warnings)``, as :func:`decode_segments` returned it."""
    import numpy as np

    from genrekit.audio.segments import Segments

    samples = np.frombuffer(row["samples"], dtype=np.float32).reshape(-1, row["width"])
    starts, ends = np.asarray(row["starts"], dtype=np.float64), np.asarray(row["ends"], dtype=np.float64)
    padded = np.asarray(row["padded"], dtype=bool)
    return (Segments(samples=samples, starts=starts, ends=ends, padded=padded), row["duration"],
            list(row.get("warnings") or []))


def _node_address() -> str:
    import ray

    return ray.util.get_node_ip_address()


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


class Classify:
    """Model actor of ``predict``: decoded files -> one row per file, as the local path makes them."""

    def __init__(self, model: str | None, options: dict, excerpt: dict, metadata: dict, threads: int = 1,
                 device: str = "cpu", ledger=None):
        from genrekit.inference.model import load_model

        set_threads(threads)
        self.model = load_model(model, device=device)
        self.model_id = self.model.model_id
        self.options, self.excerpt, self.ledger, self.node = options, excerpt, ledger, _node_address()
        self.schema = predict_schema(metadata)

    def __call__(self, batch):
        import pyarrow as pa

        rows = batch.to_pylist()
        careful = _Careful(self.ledger, "classify", [row["path"] for row in rows])
        if careful.on:  # file by file, each reported to the ledger first
            out = []
            for row in rows:
                killer = careful.killer(row["path"])
                out += [self._row(error_record(row["path"], killer), row)] if killer else self._classify([row])
        else:
            out = self._classify(rows)
        careful.finish()
        return pa.Table.from_pylist(out, schema=self.schema)

    def _row(self, record: dict, source: dict) -> dict:
        return record_to_row(record, fingerprint=source.get("fingerprint"), model=self.model_id, node=self.node,
                             decode_node=source.get("node"))

    def _classify(self, rows: list[dict]) -> list[dict]:
        """Like the local path: the windows of all decoded files through the network at once, then
        :func:`summarize` per file; very long files streamed one by one."""
        records: dict[int, dict] = {}
        decoded = []
        for i, row in enumerate(rows):
            if row["error"] is not None:
                records[i] = error_record(row["path"], row["error"])
            elif row["stream"]:
                records[i] = with_local_copy(real_path(row), self._predict_streamed)
                if isinstance(records[i], str):
                    records[i] = error_record(row["path"], records[i])
                else:
                    records[i]["path"] = row["path"]
            else:
                decoded.append((i, *_segments_of(row)))
        records.update(self._summarize(rows, decoded))
        return [self._row(records[i], rows[i]) for i in range(len(rows))]

    def _summarize(self, rows: list[dict], decoded: list[tuple]) -> dict[int, dict]:
        """Records of decoded files, exactly as the local batch makes them."""
        pending = [(rows[i]["path"], segs, duration, warnings) for i, segs, duration, warnings in decoded]
        return dict(zip([i for i, *_ in decoded], classify_decoded(self.model, pending, self.options)))

    def _predict_streamed(self, path: str):
        try:
            return predict_audio(self.model, path, **self.options, **self.excerpt).to_dict()
        except GenrekitError as exc:
            return str(exc)


class Embed:
    """Model actor of ``embed``: decoded files -> one row per segment (:class:`genrekit.data.embed.Embedder`)."""

    def __init__(self, spec: dict, settings: dict, threads: int = 1, device: str = "cpu", ledger=None):
        set_threads(threads)
        self.embedder = Embedder(spec, device=device, **settings)
        self.ledger = ledger

    def __call__(self, batch):
        rows = batch.to_pylist()
        careful = _Careful(self.ledger, "embed", [row["path"] for row in rows])
        out = []
        for row in rows:
            killer = careful.killer(row["path"])
            if killer:
                out.append(error_row(row["path"], killer, row.get("fingerprint")))
            elif row["error"] is not None:
                out += self.embedder.rows(row, row["error"])
            elif row["stream"]:
                out += with_local_copy(real_path(row), partial(self._streamed, row))
            else:
                out += self.embedder.rows(row, _segments_of(row))
        careful.finish()
        return self.embedder.table(out)

    def _streamed(self, row: dict, local: str) -> list[dict]:
        rows = self.embedder.rows({**row, "path": local}, "stream")
        for out in rows:
            out["path"] = row["path"]
            out["track"] = row.get("track") or row["path"]
            if out["error"]:
                out["error"] = out["error"].replace(local, row["path"])
        return rows
