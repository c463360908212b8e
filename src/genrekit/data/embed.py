"""Writing feature tables: audio -> one Parquet row per segment (track, path, label, start, end, feature).

``genrekit embed`` extracts a feature (musicnn embeddings or taggrams, log-mel, MFCC: any
:func:`genrekit.features.registry.build_feature` spec) once, so that many heads can be trained on
the table. Files are decoded and cut exactly as ``genrekit predict`` does
(:func:`genrekit.inference.batch.decode_segments`).

Columns: ``track`` (the dataset's track id, else the path), ``path``, ``label`` (null for plain
files), ``start`` and ``end`` (seconds), ``feature`` (``fixed_size_list<float32>[dim]``; a feature
with several axes, such as a log-mel patch, is flattened in C order and its shape recorded in the
metadata), ``fingerprint`` (size and modification time of the file, for resuming) and ``error``.
A file that cannot be read gives one row with ``path``, ``error`` and nothing else, so a table
says which files are missing. The schema metadata key ``genrekit``
(:data:`genrekit.data.tables.METADATA_KEY`) holds the feature spec, sample rate, window and hop
as JSON. :func:`genrekit.data.tables.read_table` reads the tables back (a file, or the folder
that ``--ray`` writes), leaving out the error rows.

The Ray path (:mod:`genrekit.apps.cluster`) writes the same columns with the same code.
"""

from __future__ import annotations

import json
from typing import Iterable, Iterator

import numpy as np

# torch, the feature modules, the segmenter and the datasets are imported where used (torch,
# librosa and friends load only when needed)
from genrekit.data.identity import file_fingerprint
from genrekit.data.tables import METADATA_KEY
from genrekit.errors import GenrekitError, UsageError
from genrekit.inference.batch import collect_audio_files, decode_segments
from genrekit.utils import utf8_text

#: The feature ``genrekit embed`` extracts by default: what the bundled default model consumes.
DEFAULT_FEATURE = {"name": "musicnn", "model": "MSD_musicnn", "layer": "penultimate"}
#: Windows sent through the feature module at once (bounds activation memory).
FEATURE_BATCH = 64

__all__ = ["DEFAULT_FEATURE", "METADATA_KEY", "Embedder", "embed_items", "error_row", "file_fingerprint",
           "list_items", "parse_feature", "write_feature_table"]


def parse_feature(text: str | None) -> dict:
    """A feature spec from ``--feature``: JSON (``'{"name": "mfcc", "n_mfcc": 20}'``) or a bare name.

    Parameters
    ----------
    text : str or None
        Empty or None gives :data:`DEFAULT_FEATURE`.

    Returns
    -------
    dict
        A spec with a ``name``.

    Raises
    ------
    UsageError
        Invalid JSON, or JSON that is not an object with a ``name``.

    Examples
    --------
    >>> parse_feature("mfcc"), parse_feature('{"name": "logmel", "n_mels": 64}')
    ({'name': 'mfcc'}, {'name': 'logmel', 'n_mels': 64})
    """
    if not text:
        return dict(DEFAULT_FEATURE)
    text = text.strip()
    if not text.startswith("{"):
        return {"name": text}
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--feature is not valid JSON: {exc}") from None
    if not isinstance(spec, dict) or "name" not in spec:
        raise UsageError('--feature must be a name or a JSON object with a "name", e.g. {"name": "musicnn"}')
    return spec


class Embedder:
    """A feature module with the decoding and segmenting settings of one table.

    Parameters
    ----------
    spec : dict
        Feature spec for :func:`genrekit.features.registry.build_feature`.
    window, hop : float
        Segment length and step in seconds (``hop`` defaults to ``window``).
    sample_rate : int, optional
        Decoding rate; default the feature's own (``sr``), else 22050 Hz.
    device : str
        ``"cpu"`` or ``"cuda"``.
    max_windows : int, default 0
        Window budget: rows for at most this many windows per file, spread evenly over it
        (:func:`genrekit.audio.windows.read_windows`); 0 gives every window.
    """

    def __init__(self, spec: dict, *, window: float = 3.0, hop: float | None = None, last: str = "pad",
                 sample_rate: int | None = None, device: str = "cpu", max_windows: int = 0):
        import torch

        from genrekit.features.registry import build_feature

        self.spec = dict(spec)
        self.module = build_feature(self.spec).eval().to(device)
        self.device = torch.device(device)
        self.sr = int(sample_rate or getattr(self.module, "sr", None) or 22050)
        self.window, self.hop, self.last = float(window), float(hop or window), last
        self.max_windows = int(max_windows)
        probe = self._forward(np.zeros((1, int(round(self.window * self.sr))), np.float32))
        self.shape = list(probe.shape[1:])
        self.dim = int(np.prod(self.shape))

    @property
    def metadata(self) -> dict:
        """The table's ``genrekit`` metadata: feature spec and shape, rate, windows (and budget)."""
        budget = {"max_windows": self.max_windows} if self.max_windows else {}
        return {"feature": self.spec, "feature_shape": self.shape, "sample_rate": self.sr,
                "window": self.window, "hop": self.hop, "last": self.last, **budget}

    def schema(self):
        """The Arrow schema of this table (columns in the module docstring).

        Returns
        -------
        pyarrow.Schema
            With the :attr:`metadata` under :data:`METADATA_KEY`.
        """
        import pyarrow as pa

        return pa.schema([
            ("track", pa.string()), ("path", pa.string()), ("label", pa.string()),
            ("start", pa.float64()), ("end", pa.float64()),
            ("feature", pa.list_(pa.float32(), self.dim)),
            ("fingerprint", pa.string()), ("error", pa.string()),
        ], metadata={METADATA_KEY: json.dumps(self.metadata).encode()})

    def decode(self, path):
        """:func:`genrekit.inference.batch.decode_segments` with this table's settings:
        ``(Segments, seconds, warnings)``, ``"stream"`` for a very long file, or an error.

        Parameters
        ----------
        path : str
            An audio file.

        Returns
        -------
        tuple or str
        """
        return decode_segments(path, sr=self.sr, window=self.window, hop=self.hop, last=self.last,
                               offset=0.0, duration=None, max_windows=self.max_windows)

    def _forward(self, samples: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.module(torch.as_tensor(samples, dtype=torch.float32, device=self.device))
        return out.float().cpu().numpy()

    def vectors(self, samples: np.ndarray) -> np.ndarray:
        """Feature vectors of windows, batch by batch.

        Parameters
        ----------
        samples : np.ndarray
            Windows at :attr:`sr` Hz, float32, shape ``(n, window_samples)``.

        Returns
        -------
        np.ndarray
            float32, shape ``(n, dim)`` (2-D features flattened).
        """
        parts = [self._forward(samples[first:first + FEATURE_BATCH]).reshape(-1, self.dim)
                 for first in range(0, len(samples), FEATURE_BATCH)]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, self.dim), np.float32)

    def rows(self, item: dict, decoded) -> list[dict]:
        """The table rows of one file: ``item`` holds ``path`` (and ``track``, ``label``,
        ``fingerprint``); ``decoded`` is what :meth:`decode` returned for it.

        Parameters
        ----------
        item : dict
        decoded : tuple or str

        Returns
        -------
        list of dict
            One row per window, or one error row.
        """
        base = {"track": item.get("track") or str(item["path"]), "path": str(item["path"]),
                "label": item.get("label"), "fingerprint": item.get("fingerprint")}
        if isinstance(decoded, str) and decoded != "stream":
            return [error_row(item["path"], decoded, item.get("fingerprint"))]
        try:
            batches = self._stream(item["path"]) if decoded == "stream" else [decoded[0]]
            rows = []
            for segs in batches:
                features = self.vectors(segs.samples)
                rows += [{**base, "start": float(s), "end": float(e), "feature": f, "error": None}
                         for s, e, f in zip(segs.starts, segs.ends, features)]
        except GenrekitError as exc:
            return [error_row(item["path"], str(exc), item.get("fingerprint"))]
        return rows

    def _stream(self, path):
        """Windows of a file too long to decode whole, in batches (bounded memory)."""
        from genrekit.audio.windows import read_windows

        return read_windows(path, self.sr, window=self.window, hop=self.hop, last=self.last,
                            max_windows=self.max_windows, batch_size=FEATURE_BATCH)

    def table(self, rows: list[dict]):
        """Rows as an Arrow table of :meth:`schema` (features as one contiguous array).

        Parameters
        ----------
        rows : list of dict
            From :meth:`rows` or :func:`error_row`.

        Returns
        -------
        pyarrow.Table
        """
        import pyarrow as pa

        schema = self.schema()
        # Parquet strings are UTF-8: a file-name byte that is not is written \xHH (utils.utf8_text)
        columns = {name: [utf8_text(v) if isinstance(v, str) else v for v in (row.get(name) for row in rows)]
                   for name in schema.names if name != "feature"}
        flat = np.zeros((len(rows), self.dim), np.float32)
        present = np.array([row.get("feature") is not None for row in rows], bool)
        for i in np.flatnonzero(present):
            flat[i] = rows[i]["feature"]
        values = pa.array(flat.reshape(-1))
        features = pa.FixedSizeListArray.from_arrays(values, self.dim, mask=pa.array(~present))
        arrays = [features if name == "feature" else pa.array(columns[name], schema.field(name).type)
                  for name in schema.names]
        return pa.Table.from_arrays(arrays, schema=schema)


def error_row(path, error: str, fingerprint: str | None = None) -> dict:
    """The row of a file that failed: only ``path``, ``error`` (and ``fingerprint``) are set.

    Parameters
    ----------
    path : str or path-like
    error : str
    fingerprint : str or None

    Returns
    -------
    dict
    """
    return {"track": None, "path": str(path), "label": None, "start": None, "end": None,
            "feature": None, "fingerprint": fingerprint, "error": str(error)}


def list_items(inputs: Iterable[str], *, labels: str | None = None, recursive: bool = True) -> list[dict]:
    """The files to embed as ``{"path", "track", "label", "problem"}`` dicts.

    Without ``labels`` the inputs are files, folders and globs as for ``genrekit predict`` and rows
    get no label. With ``labels`` (``auto``, ``gtzan``, ``fma``, ``folder`` or ``manifest``) each
    input is opened as a labelled dataset of that kind and rows carry its labels and track ids.

    Parameters
    ----------
    inputs : iterable of str
    labels : str, optional
    recursive : bool, default True
        Search folders below the folders given (without ``labels``).

    Returns
    -------
    list of dict
    """
    if not labels:
        return [{"path": path, "track": None, "label": None, "problem": problem}
                for path, problem in collect_audio_files(inputs, recursive=recursive)]
    from genrekit.data.datasets import open_dataset

    items = []
    for item in inputs:
        dataset = open_dataset(item, labels)
        items += [{"path": str(t.path), "track": t.track_id, "label": t.label, "problem": None}
                  for t in dataset.tracks]
    return items


def embed_items(items: Iterable[dict], embedder: Embedder) -> Iterator[list[dict]]:
    """Each file's rows, in input order (one error row for a file that failed).

    Parameters
    ----------
    items : iterable of dict
        From :func:`list_items`.
    embedder : Embedder

    Yields
    ------
    list of dict
    """
    for item in items:
        item = {**item, "fingerprint": file_fingerprint(item["path"])}
        if item.get("problem"):
            yield [error_row(item["path"], f"{item['path']}: {item['problem']}", item["fingerprint"])]
            continue
        yield embedder.rows(item, embedder.decode(item["path"]))


def write_feature_table(per_file: Iterable[list[dict]], path, embedder: Embedder) -> tuple[int, int]:
    """Write rows to one Parquet file (atomically).

    Parameters
    ----------
    per_file : iterable of list of dict
        Each file's rows (:func:`embed_items`).
    path : str or path-like
        The Parquet file.
    embedder : Embedder
        Gives the schema.

    Returns
    -------
    n_ok, n_failed : int
        Files embedded and files failed.
    """
    import pyarrow.parquet as pq

    from genrekit.utils import atomic_write

    n_ok = n_failed = 0
    with atomic_write(path, "wb") as handle:
        writer = pq.ParquetWriter(handle, embedder.schema())
        try:
            for rows in per_file:
                writer.write_table(embedder.table(rows))
                if rows and rows[0]["error"] is not None:
                    n_failed += 1
                else:
                    n_ok += 1
        finally:
            writer.close()
    return n_ok, n_failed
