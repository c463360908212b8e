"""Hostile feature tables (issue 17, item 6): each is one :class:`DatasetError` naming the file
(one error line on the command line), never a traceback, a warning or an 18 TiB allocation."""

import io
import warnings
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genrekit.apps.cli import main
from genrekit.data.tables import read_table
from genrekit.errors import DatasetError

IDS = np.array(["a", "a", "b"])
LABELS = np.array(["x", "x", "y"])


def npy_bytes(array=None, header=None, payload=b""):
    buffer = io.BytesIO()
    if header is None:
        np.save(buffer, array)
    else:
        np.lib.format.write_array_header_1_0(buffer, header)
        buffer.write(payload)
    return buffer.getvalue()


def write_npz(path, **members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return path


def npz_cases(folder):
    good = {"IDS": npy_bytes(IDS), "Y": npy_bytes(LABELS)}
    cases = {
        "not-a-zip": (folder / "text.npz", "not a zip archive"),
        "npy-named-npz": (folder / "plain.npz", "not a zip archive"),
        "declares-1e11-rows": (write_npz(folder / "huge.npz", X=npy_bytes(
            header={"descr": "<f4", "fortran_order": False, "shape": (100_000_000_000, 50)},
            payload=b"\0" * 600), **good), r"declares shape \(100000000000, 50\)"),
        "complex-features": (write_npz(folder / "complex.npz", X=npy_bytes(np.ones((3, 2), np.complex64) * 1j),
                                       **good), "complex64 values; features must be real"),
        "pickled-ids": (write_npz(folder / "objects.npz", X=npy_bytes(np.ones((3, 2), np.float32)),
                                  IDS=npy_bytes(np.array(["a", "a", "b"], dtype=object)), Y=good["Y"]),
                        "pickled data"),
        "deep-metadata": (write_npz(folder / "deep.npz", X=npy_bytes(np.ones((3, 2), np.float32)),
                                    META=npy_bytes(np.array("[" * 100_000 + "]" * 100_000)), **good),
                          "metadata is not JSON"),
        "empty": (write_npz(folder / "empty.npz", X=npy_bytes(np.zeros((0, 2), np.float32)),
                            IDS=npy_bytes(np.array([], dtype=str))), "holds no feature rows"),
    }
    (folder / "text.npz").write_text("not an archive")
    np.save(folder / "plain.npy", np.ones((3, 2)))
    (folder / "plain.npy").rename(folder / "plain.npz")
    data = (folder / "complex.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (folder / "truncated.npz", "not a zip archive")
    return cases


def parquet_cases(folder):
    base = {"track": list(IDS), "label": list(LABELS)}
    tables = {
        "ragged-lists": ({**base, "feature": [[1.0, 2.0], [1.0], [3.0, 4.0]]}, r"different lengths \(1 to 2"),
        "struct-features": ({**base, "feature": [{"a": 1}, {"a": 2}, {"a": 3}]}, "holds struct"),
        "string-features": ({**base, "feature": [["1"], ["2"], ["3"]]}, "holds list<element: string>"),
        "string-column": ({**base, "f0": ["1", "2", "3"], "f1": [1.0, 2.0, 3.0]}, "'f0' holds string"),
        "string-start": ({**base, "feature": [[1.0], [2.0], [3.0]], "start": ["0", "3", "0"]},
                         "'start' column holds string"),
        "missing-vector": ({**base, "feature": [[1.0], None, [3.0]]}, "1 rows have no feature vector"),
        "empty": ({"track": pa.array([], pa.string()), "feature": pa.array([], pa.list_(pa.float32()))},
                  "holds no feature rows"),
    }
    cases = {}
    for name, (columns, message) in tables.items():
        pq.write_table(pa.table(columns), folder / f"{name}.parquet")
        cases[name] = (folder / f"{name}.parquet", message)
    return cases


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile-tables")
    return {**{f"npz-{k}": v for k, v in npz_cases(folder).items()},
            **{f"parquet-{k}": v for k, v in parquet_cases(folder).items()}}


CASES = ["npz-not-a-zip", "npz-npy-named-npz", "npz-declares-1e11-rows", "npz-complex-features", "npz-pickled-ids",
         "npz-empty", "npz-truncated", "npz-deep-metadata", "parquet-ragged-lists", "parquet-struct-features",
         "parquet-string-features", "parquet-string-column", "parquet-string-start", "parquet-missing-vector",
         "parquet-empty"]


@pytest.mark.parametrize("case", CASES)
def test_hostile_table_is_one_dataset_error(hostile, case):
    path, message = hostile[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # complex features used to pass with a ComplexWarning
        with pytest.raises(DatasetError, match=message) as error:
            read_table(path)
    assert str(path) in str(error.value)


def test_good_tables_still_read(tmp_path):
    np.savez(tmp_path / "good.npz", X=np.ones((3, 2), np.float32), IDS=IDS, Y=LABELS)
    pq.write_table(pa.table({"track": list(IDS), "label": list(LABELS), "feature": [[1.0, 2.0]] * 3,
                             "start": [0.0, 3.0, 0.0]}), tmp_path / "good.parquet")
    pq.write_table(pa.table({"track": list(IDS), "f0": [1, 2, 3], "f1": [0.5, 0.5, 0.5]}), tmp_path / "cols.parquet")
    for name in ("good.npz", "good.parquet", "cols.parquet"):
        table = read_table(tmp_path / name)
        assert table.features.shape == (3, 2) and table.tracks == ["a", "b"]


@pytest.mark.parametrize("case", ["npz-declares-1e11-rows", "parquet-ragged-lists", "parquet-empty"])
def test_cli_gives_one_error_line(hostile, case, tiny_model_file, capsys):
    path, message = hostile[case]
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(tiny_model_file), str(path), "--split", "all"])
    assert exit_info.value.code not in (0, None)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(path.name) in lines[0], err
