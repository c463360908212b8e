"""Writers for prediction records: table (for people), JSON, JSON Lines and CSV (for programs).

Every writer streams: a record is written as soon as it is produced, so a long batch shows
progress and an interrupted run keeps what it printed. JSON writers refuse NaN and infinity
(``allow_nan=False``): a bare ``NaN`` is not JSON, and no such number may reach an output.
JSON and CSV stay valid UTF-8: a file name byte that is not UTF-8 is written ``\\xHH``
(:func:`genrekit.utils.utf8_text`), as tables and ``error:`` lines show it.
"""

from __future__ import annotations

import csv
import json
from typing import IO, Iterable

from genrekit.utils import printable, utf8_json, utf8_text

FORMATS = ("table", "json", "jsonl", "csv")


def write_records(records: Iterable[dict], fmt: str, stream: IO[str], *, top_k: int = 3) -> tuple[int, int]:
    """Write prediction records to ``stream`` in ``fmt``, one at a time as they come.

    Parameters
    ----------
    records : iterable of dict
        ``Prediction.to_dict()`` records, or ``{"path", "error"}`` for failed files.
    fmt : {"table", "json", "jsonl", "csv"}
        One of :data:`FORMATS`.
    stream : file object
        Text output; flushed after each record.
    top_k : int, default 3
        Genres shown per file in the table and CSV.

    Returns
    -------
    n_ok, n_failed : int
        Records written without and with an error.
    """
    writer = {"table": _TableWriter, "json": _JsonWriter, "jsonl": _JsonlWriter, "csv": _CsvWriter}[fmt]
    out = writer(stream, top_k)
    n_ok = n_failed = 0
    try:
        for record in records:
            out.write(record)
            stream.flush()
            if "error" in record:
                n_failed += 1
            else:
                n_ok += 1
    finally:
        out.close()
    return n_ok, n_failed


def _fmt_time(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:05.2f}"


def _json(record: dict, **options) -> str:
    return utf8_json(json.dumps(record, ensure_ascii=False, allow_nan=False, **options))


class _TableWriter:
    def __init__(self, stream, top_k):
        self.stream, self.top_k = stream, top_k

    def write(self, record: dict) -> None:
        w = self.stream.write
        path = printable(record["path"])  # a table is for a terminal: no raw control characters
        if "error" in record:
            w(f"{path}\n  error: {printable(record['error'])}\n")
            return
        if record.get("genre") is None:
            if record.get("not_music"):
                w(f"{path}\n  not music ({record['duration']:.1f} s): no genre\n")
            else:
                w(f"{path}\n  silence ({record['duration']:.1f} s): nothing to classify\n")
            self._segments(record)
            return
        flags = [f for f in ("uncertain", "short") if record.get(f)]
        note = f"  [{', '.join(flags)}]" if flags else ""
        w(f"{path}\n  genre: {record['genre']}  ({record['confidence']:.1%}){note}"
          f"   duration {record['duration']:.1f} s\n")
        for rank, item in enumerate(record["top"], 1):
            bar = "#" * int(round(item["probability"] * 30))
            w(f"  {rank}. {item['genre']:<12} {item['probability']:6.1%} {bar}\n")
        if record.get("styles"):
            w("  styles: " + ", ".join(f"{s['style']} {s['score']:.2f}" for s in record["styles"]) + "\n")
        for warning in record.get("warnings") or []:
            w(f"  warning: {printable(warning)}\n")
        self._segments(record)

    def _segments(self, record: dict) -> None:
        for seg in record.get("segments") or []:
            span = f"{_fmt_time(seg['start'])}-{_fmt_time(seg['end'])}"
            if seg.get("silent"):
                self.stream.write(f"     {span}  (silence)\n")
            elif seg.get("not_music") or seg.get("genre") is None:
                self.stream.write(f"     {span}  (not music)\n")
            else:
                p = seg["probabilities"][seg["genre"]]
                self.stream.write(f"     {span}  {seg['genre']:<12} {p:6.1%}\n")

    def close(self) -> None:
        pass


class _JsonWriter:
    """One JSON object for one file, a JSON array of objects for several."""

    def __init__(self, stream, top_k):
        self.stream, self.first, self.pending = stream, True, None

    def write(self, record: dict) -> None:
        # hold the first record back until we know whether an array is needed
        if self.first and self.pending is None:
            self.pending = record
            return
        if self.first:
            self.stream.write("[\n" + _json(self.pending))
            self.first = False
        self.stream.write(",\n" + _json(record))

    def close(self) -> None:
        if self.first and self.pending is not None:
            self.stream.write(_json(self.pending, indent=2) + "\n")
        elif not self.first:
            self.stream.write("\n]\n")


class _JsonlWriter:
    def __init__(self, stream, top_k):
        self.stream = stream

    def write(self, record: dict) -> None:
        self.stream.write(_json(record) + "\n")

    def close(self) -> None:
        pass


class _CsvWriter:
    def __init__(self, stream, top_k):
        columns = ["path", "genre", "confidence", "uncertain", "not_music", "duration"]
        for rank in range(1, top_k + 1):
            columns += [f"top{rank}_genre", f"top{rank}_probability"]
        columns.append("error")
        self.writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
        self.writer.writeheader()

    def write(self, record: dict) -> None:
        row = {key: record.get(key) for key in ("path", "genre", "confidence", "uncertain", "duration", "error")}
        if "error" not in record:
            row["not_music"] = bool(record.get("not_music"))
        for rank, item in enumerate(record.get("top", []), 1):
            row[f"top{rank}_genre"] = item["genre"]
            row[f"top{rank}_probability"] = item["probability"]
        self.writer.writerow({key: utf8_text(v) if isinstance(v, str) else v for key, v in row.items()})

    def close(self) -> None:
        pass
