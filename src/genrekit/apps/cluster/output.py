"""Where a Ray run writes: the Parquet output folder (one row per file for ``predict``, one per
segment for ``embed``), reading it back, and resuming (files already done are skipped)."""

from __future__ import annotations

import json
import os

from genrekit.apps.cluster.inputs import fingerprint, is_uri
from genrekit.apps.console import warn
from genrekit.data.tables import METADATA_KEY
from genrekit.errors import OutputError, UsageError
from genrekit.inference.predict import error_record
from genrekit.utils import utf8_text


def is_parquet_output(output: str | None) -> bool:
    return bool(output) and str(output).rstrip("/").lower().endswith(".parquet")


def output_fs(output: str):
    """``(pyarrow filesystem, root path in it)`` of an output folder (local path or URI)."""
    from pyarrow import fs

    if is_uri(output):
        return fs.FileSystem.from_uri(output)
    return fs.LocalFileSystem(), os.path.abspath(output)


def check_output_folder(output: str) -> None:
    """A local Parquet output folder goes into an existing folder and is a folder if it exists;
    :class:`~genrekit.errors.OutputError` otherwise (URIs are the object store's business)."""
    if is_uri(output):
        return
    if os.path.exists(output) and not os.path.isdir(output):
        raise OutputError(f"{output}: not a folder; a Parquet output (-o NAME.parquet) is a folder")
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise OutputError(f"{output}: folder {parent} does not exist")


def output_files(output: str) -> list[str]:
    """The Parquet files in an output folder (paths for its ``pyarrow.fs`` filesystem)."""
    from pyarrow import fs

    filesystem, root = output_fs(output)
    if filesystem.get_file_info(root).type != fs.FileType.Directory:
        return []
    found = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    return sorted(f.path for f in found if f.type == fs.FileType.File and f.path.endswith(".parquet"))


def read_output(output: str, files: list[str] | None = None, columns: list[str] | None = None) -> list[dict]:
    """Rows of an output folder (or of some of its ``files``); unreadable files are skipped with a
    warning, since an interrupted run can leave half a file."""
    import pyarrow.parquet as pq

    filesystem, _ = output_fs(output)
    rows: list[dict] = []
    for name in output_files(output) if files is None else files:
        try:
            rows += pq.read_table(name, filesystem=filesystem, columns=columns).to_pylist()
        except (OSError, ValueError) as exc:
            warn(f"{name}: unreadable Parquet file skipped ({exc})")
    return rows


def output_metadata(output: str) -> dict[str, dict]:
    """The ``genrekit`` schema metadata (what made it) of every readable file of an output folder."""
    import pyarrow.parquet as pq

    filesystem, _ = output_fs(output)
    found = {}
    for name in output_files(output):
        try:
            metadata = pq.read_schema(name, filesystem=filesystem).metadata or {}
            found[name] = json.loads(metadata.get(METADATA_KEY, b"{}"))
        except (OSError, ValueError):
            continue
    return found


def skip_done(found: list[tuple[str, str | None]], output: str, metadata: dict | None = None
              ) -> tuple[list[tuple[str, str | None]], int]:
    """Drop files that already have rows in ``output`` with the same path and fingerprint.

    Only files whose path is in the output are looked at again (one ``stat`` each), so resuming
    a job costs time in proportion to what it had done, not to the whole list. An output made
    with other settings (``metadata``: model and options, or feature and segmenting) is refused.
    """
    expected = json.loads(json.dumps(metadata))
    for name, existing in output_metadata(output).items() if metadata is not None else ():
        if existing != expected:  # every part: one written by another model must not count as done
            raise UsageError(f"{output} holds results made with other settings ({json.dumps(existing)} in "
                             f"{os.path.basename(name)}); write to another folder, or delete it to start again")
    done: dict[str, set] = {}
    for row in read_output(output, columns=["path", "fingerprint"]):
        if row["fingerprint"]:
            done.setdefault(row["path"], set()).add(row["fingerprint"])
    if not done:
        return found, 0
    todo = [(path, problem) for path, problem in found  # paths are stored as utf8_text writes them
            if problem or utf8_text(path) not in done or fingerprint(path) not in done[utf8_text(path)]]
    return todo, len(found) - len(todo)


def predict_schema(metadata: dict | None = None):
    """Columns of ``predict`` output: the JSON contract's fields plus bookkeeping; ``metadata``
    (model and options) is stored under the schema metadata key ``genrekit``."""
    import pyarrow as pa

    probabilities = pa.map_(pa.string(), pa.float64())
    segment = pa.struct([("start", pa.float64()), ("end", pa.float64()), ("genre", pa.string()),
                         ("probabilities", probabilities), ("silent", pa.bool_()), ("not_music", pa.bool_())])
    return pa.schema([
        ("path", pa.string()), ("genre", pa.string()), ("confidence", pa.float64()),
        ("top", pa.list_(pa.struct([("genre", pa.string()), ("probability", pa.float64())]))),
        ("duration", pa.float64()), ("uncertain", pa.bool_()), ("silent", pa.bool_()), ("short", pa.bool_()),
        ("not_music", pa.bool_()),
        ("styles", pa.list_(pa.struct([("style", pa.string()), ("score", pa.float64())]))),
        ("segments", pa.list_(segment)), ("warnings", pa.list_(pa.string())), ("error", pa.string()),
        ("fingerprint", pa.string()), ("model", pa.string()), ("node", pa.string()),
        ("decode_node", pa.string()),
    ], metadata={METADATA_KEY: json.dumps(metadata).encode()} if metadata else None)


def record_to_row(record: dict, **extra) -> dict:
    """A JSON record of :func:`genrekit.inference.batch.predict_found` as a ``predict`` output row."""
    row = {name: None for name in predict_schema().names}
    row.update({key: value for key, value in record.items() if key in row})
    if "error" not in record:
        for flag in ("silent", "short", "not_music"):
            row[flag] = bool(record.get(flag))
        if record.get("segments") is not None:
            row["segments"] = [{**segment, "silent": bool(segment.get("silent")),
                                "not_music": bool(segment.get("not_music"))} for segment in record["segments"]]
    row.update(extra)
    # Parquet strings are UTF-8: a file-name byte that is not is written \xHH (utils.utf8_text)
    for key in ("path", "error"):
        if isinstance(row[key], str):
            row[key] = utf8_text(row[key])
    if row["warnings"]:
        row["warnings"] = [utf8_text(warning) for warning in row["warnings"]]
    return row


def row_to_record(row: dict) -> dict:
    """A ``predict`` output row back to the JSON record ``genrekit predict`` prints."""
    if row.get("error") is not None:
        return error_record(row["path"], row["error"])
    record = {key: row[key] for key in ("path", "genre", "confidence", "top", "duration", "uncertain")}
    record["top"] = [dict(item) for item in row["top"] or []]
    for flag in ("silent", "short", "not_music"):
        if row.get(flag):
            record[flag] = True
    if row.get("styles") is not None:
        record["styles"] = [dict(item) for item in row["styles"]]
    if row.get("segments") is not None:
        record["segments"] = []
        for segment in row["segments"]:
            probabilities = segment["probabilities"]
            out = {"start": segment["start"], "end": segment["end"], "genre": segment["genre"],
                   "probabilities": None if probabilities is None else dict(probabilities)}
            for flag in ("silent", "not_music"):
                if segment.get(flag):
                    out[flag] = True
            record["segments"].append(out)
    if row.get("warnings"):
        record["warnings"] = list(row["warnings"])
    return record
