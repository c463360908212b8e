"""Running a Ray job: connecting to (or starting) the cluster, planning the actor pool, the Ray
Data pipeline (file list -> decoding tasks -> model actors -> Parquet or the local writers), and
the two entry points :func:`predict_on_ray` and :func:`embed_on_ray`."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from functools import partial
from typing import Callable, Iterable

from genrekit.apps.cluster.inputs import list_files, name_problem, read_file_list
from genrekit.apps.cluster.output import (
    check_output_folder,
    is_parquet_output,
    output_files,
    output_fs,
    read_output,
    row_to_record,
    skip_done,
)
from genrekit.apps.cluster.stages import Classify, Embed, Ledger, decode_batch
from genrekit.apps.console import is_debug, is_quiet, stderr
from genrekit.data.embed import Embedder, list_items
from genrekit.errors import UsageError
from genrekit.inference.batch import available_cores, decode_segments
from genrekit.inference.predict import DEFAULT_MAX_WINDOWS
from genrekit.utils import output_target, printable, utf8_text

RAY_HINT = "--ray needs Ray, an optional extra: pip install 'genrekit[ray]'"
#: Ray retries of a batch whose worker died. A retried batch names each file to the ledger before
#: working on it, so every further death is charged to one file; two deaths make it an error row.
DEATH_RETRIES = 10
#: Files per decoding task and per call of a model actor (about 40 windows of 3 s for 30 s clips).
FILES_PER_TASK = 16
FILES_PER_BATCH = 4
#: Rows gathered into one Parquet file (fewer, bigger files than one per batch).
ROWS_PER_FILE = {"predict": 1000, "embed": 20000}
#: Object store of a ``--ray local`` instance: decoded clips are 2 MB, so 1 GiB holds hundreds.
LOCAL_OBJECT_STORE = 1 << 30


def import_ray():
    """``ray`` with Ray Data, or a :class:`UsageError` (exit 2) with the install hint."""
    import importlib

    try:
        ray = importlib.import_module("ray")
        importlib.import_module("ray.data")
    except ImportError:
        raise UsageError(RAY_HINT) from None
    return ray


@dataclasses.dataclass
class RunReport:
    """What a Ray run did: files listed, skipped (already done), written and failed."""

    listed: int
    skipped: int
    ok: int
    failed: int
    missing: int
    seconds: float


class connect:
    """Context manager: connect to (or start) the Ray cluster of ``--ray ADDRESS``; shut down after.

    ``auto``: the running cluster (``RAY_ADDRESS``, or the one started on this machine), as
    ``ray.init(address="auto")``; ``local``: a new single-machine instance for this run;
    otherwise ``HOST:PORT`` of a head node (or a ``ray://`` client address).
    """

    def __init__(self, address: str, *, num_cpus: int | None = None):
        self.address, self.num_cpus, self.started = address, num_cpus, False

    def __enter__(self):
        import logging

        ray = import_ray()
        if ray.is_initialized():  # e.g. called from a driver that has connected already
            return ray
        options: dict = {"logging_level": logging.INFO if is_debug() else logging.WARNING, "log_to_driver": True}
        if self.address == "local":
            options.update(address="local", num_cpus=self.num_cpus or available_cores(),
                           object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False)
        else:
            options["address"] = self.address
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"--ray {self.address}: cannot connect to a Ray cluster ({str(exc).splitlines()[0]})") from None
        self.started = True
        return ray

    def __exit__(self, *exc):
        if self.started:
            import ray

            ray.shutdown()


def _cluster_resources(ray) -> tuple[int, int]:
    resources = ray.cluster_resources()
    return int(resources.get("CPU", 1)), int(resources.get("GPU", 0))


def _plan(ray, n_files: int, *, actors: int | None, threads: int, device: str) -> dict:
    """Actor pool and resources: one actor per GPU with ``--device cuda``; on CPUs, half the
    cluster's cores go to model actors (``threads`` each) and half stay for decoding and writing."""
    cpus, gpus = _cluster_resources(ray)
    if device != "cpu":
        if not gpus:
            raise UsageError(f"--device {device}: the Ray cluster has no GPUs")
        return {"actors": actors or gpus, "num_cpus": threads, "num_gpus": 1}
    if threads >= cpus:
        raise UsageError(f"--threads {threads}: the Ray cluster has {cpus} CPUs; leave some for decoding")
    return {"actors": actors or max(1, cpus // (2 * threads)), "num_cpus": threads, "num_gpus": 0}


def build_dataset(ray, items: list[dict], stage, stage_args: dict, *, decode: Callable, plan: dict,
                  ledger, files_per_task: int = FILES_PER_TASK, files_per_batch: int = FILES_PER_BATCH):
    """The Ray Data pipeline: items -> decoding tasks -> model actors (not executed yet)."""
    import warnings

    import ray.data
    from ray.data import ActorPoolStrategy

    cpus, _ = _cluster_resources(ray)
    # enough blocks to keep every core busy on small jobs, FILES_PER_TASK files per task on big ones
    n_blocks = max(1, min(len(items), max(math.ceil(len(items) / files_per_task), 2 * cpus)))
    ds = ray.data.from_items(items, override_num_blocks=n_blocks)
    with warnings.catch_warnings():
        # Ray 2.60 has no named parameter for the retry counts yet (deprecated **ray_remote_args)
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(decode_batch, fn_kwargs={"decode": decode, "ledger": ledger}, batch_format="pyarrow",
                            batch_size=None, num_cpus=1, max_retries=DEATH_RETRIES)
        return ds.map_batches(stage, fn_constructor_kwargs={**stage_args, "ledger": ledger}, batch_format="pyarrow",
                              batch_size=files_per_batch, compute=ActorPoolStrategy(size=plan["actors"]),
                              num_cpus=plan["num_cpus"], num_gpus=plan["num_gpus"], max_restarts=-1,
                              max_task_retries=DEATH_RETRIES)


def _configure_data(ray, *, ordered: bool) -> None:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = not is_quiet()
    context.execution_options.preserve_order = ordered
    # a block that fails after all retries is left out (and reported as missing), not fatal
    context.max_errored_blocks = -1
    if not is_debug():  # Ray Data's own INFO lines (plans, progress logged off a terminal) only with --debug
        import logging

        # -q: not even its warning that progress bars are off
        logging.getLogger("ray.data").setLevel(logging.ERROR if is_quiet() else logging.WARNING)


def run(kind: str, found: list[tuple[str, str | None]], *, address: str, output: str | None,
        stage_args: dict, decode: Callable, metadata: dict, items: list[dict] | None = None, fmt: str = "jsonl",
        top_k: int = 3, stream=None, actors: int | None = None, threads: int = 1, device: str = "cpu",
        num_cpus: int | None = None) -> RunReport:
    """Run ``predict`` or ``embed`` (``kind``) on a Ray cluster; see :mod:`genrekit.apps.cluster`.

    ``found`` are ``(path, problem)`` pairs (:func:`~.inputs.list_files`); ``items`` may give the
    rows of the file list instead (with ``track``, ``label``). With a Parquet ``output`` the
    results go there and files already in it are skipped; otherwise records are written in
    ``fmt`` to ``output`` or ``stream`` as for the local path. ``metadata`` describes the settings
    (an existing output made with others is refused).
    """
    started = time.perf_counter()
    parquet = is_parquet_output(output)
    if kind == "embed" and not parquet:
        raise UsageError("embed --ray writes Parquet: give -o FOLDER.parquet")
    if parquet:
        check_output_folder(output)
    elif output:
        output_target(output)  # a missing folder or a read-only file fails now, not after the run
    if items is None:
        items = [{"path": path, "track": None, "label": None, "problem": problem} for path, problem in found]
    listed, skipped = len(items), 0
    if parquet:
        kept, skipped = skip_done([(item["path"], item["problem"]) for item in items], output, metadata)
        keep = {path for path, _ in kept}
        items = [item for item in items if item["path"] in keep]
    items = [_arrow_safe(item) for item in items]
    report = RunReport(listed=listed, skipped=skipped, ok=0, failed=0, missing=0, seconds=0.0)
    if not items:
        report.seconds = time.perf_counter() - started
        return report
    with connect(address, num_cpus=num_cpus) as ray:
        _configure_data(ray, ordered=not parquet)
        plan = _plan(ray, len(items), actors=actors, threads=threads, device=device)
        ledger = ray.remote(num_cpus=0)(Ledger).remote()
        stage = {"predict": Classify, "embed": Embed}[kind]
        ds = build_dataset(ray, items, stage, {**stage_args, "threads": threads, "device": device},
                           decode=decode, plan=plan, ledger=ledger)
        if parquet:
            report.ok, report.failed = _write_parquet(ds, kind, output)
        else:
            report.ok, report.failed = _write_records(ds, output, fmt, top_k, stream)
        report.missing = max(0, len(items) - report.ok - report.failed)
    report.seconds = time.perf_counter() - started
    return report


def _arrow_safe(item: dict) -> dict:
    """Ray Data carries strings as Arrow strings, which are UTF-8: ``path`` (and ``track``,
    ``label``) become what :func:`~genrekit.utils.utf8_text` writes, as in every output, and
    ``fspath`` keeps the name's exact bytes (``os.fsencode``), from which the workers open the file
    (:func:`~.stages.real_path`); so a file name that is not UTF-8 is classified like any other."""
    shown = {key: utf8_text(item[key]) if isinstance(item.get(key), str) else item.get(key)
             for key in ("path", "track", "label")}
    return {**item, **shown, "fspath": os.fsencode(item["path"])}


def _write_parquet(ds, kind: str, output: str) -> tuple[int, int]:
    """Run the dataset into the output folder: ``(files done, files failed)`` of this run."""
    before = set(output_files(output))
    filesystem, root = output_fs(output)
    ds.write_parquet(root, filesystem=filesystem, min_rows_per_file=ROWS_PER_FILE[kind])
    new = [name for name in output_files(output) if name not in before]
    files: dict = {}
    for row in read_output(output, new, columns=["path", "error"]):
        files.setdefault(row["path"], row["error"])  # embed: a file's rows all agree on failure
    failures = [error for error in files.values() if error is not None]
    _print_failures(failures)
    return len(files) - len(failures), len(failures)


def _write_records(ds, output: str | None, fmt: str, top_k: int, stream) -> tuple[int, int]:
    """Run the dataset into the local writers (input order kept): ``(files done, files failed)``."""
    from genrekit.apps.console import stdout
    from genrekit.inference.writers import write_records
    from genrekit.utils import atomic_write

    records = (row_to_record(row) for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None)
               for row in batch.to_pylist())
    records = _echo_failures(records)
    if output:
        with atomic_write(output, "w") as handle:
            return write_records(records, fmt, handle, top_k=top_k)
    return write_records(records, fmt, stream or stdout.file, top_k=top_k)


def _print_failures(errors: Iterable[str]) -> None:
    for error in errors:
        stderr.print(f"error: {printable(error)}", markup=False, highlight=False, soft_wrap=True)


def _echo_failures(records):
    for record in records:
        if "error" in record:
            _print_failures([record["error"]])
        yield record


def summary_line(report: RunReport, verb: str, output: str | None) -> str:
    done = report.ok + report.failed
    line = (f"{done} files in {report.seconds:.1f} s ({done / max(report.seconds, 1e-9):.1f} files/s): "
            f"{report.ok} {verb}, {report.failed} failed")
    if report.skipped:
        line += f"; {report.skipped} already in {output}, skipped"
    return line


def predict_on_ray(inputs: list[str], *, address: str, model: str | None = None, output: str | None = None,
                   fmt: str = "jsonl", files_from: str | None = None, recursive: bool = True, top_k: int = 3,
                   aggregate: str = "mean", segments: bool = False, offset: float = 0.0,
                   max_duration: float | None = None, actors: int | None = None, threads: int = 1,
                   device: str = "cpu", decode: Callable | None = None, stream=None, styles: bool = False,
                   max_windows: int = DEFAULT_MAX_WINDOWS) -> RunReport:
    """``genrekit predict --ray``: classify files on a Ray cluster (see :mod:`genrekit.apps.cluster`).

    ``decode`` replaces the decoding function (tests use it to crash workers on purpose).
    """
    from genrekit.inference.model import load_model
    from genrekit.inference.predict import check_styles

    import_ray()
    found = list_files(inputs, files_from, recursive)
    loaded = load_model(model)  # fails here, once, on a bad --model; gives the segmenting settings
    check_styles(loaded, styles)
    max_windows = 0 if segments else max_windows  # a timeline shows every window
    decode = decode or partial(decode_segments, sr=loaded.sample_rate, window=loaded.window, hop=loaded.hop,
                               last=loaded.segment.last, offset=offset, duration=max_duration,
                               max_windows=max_windows)
    # styles only when asked: outputs made before styles existed still resume
    options = {"top_k": top_k, "aggregate": aggregate, "segments": segments, **({"styles": True} if styles else {})}
    excerpt = {"offset": offset, "max_duration": max_duration, "max_windows": max_windows}
    metadata = {"model": loaded.model_id, **options, **excerpt}
    return run("predict", found, address=address, output=output, fmt=fmt, top_k=top_k, stream=stream,
               stage_args={"model": model, "options": options, "excerpt": excerpt, "metadata": metadata},
               decode=decode, metadata=metadata, actors=actors, threads=threads, device=device)


def embed_on_ray(inputs: list[str], *, address: str, output: str, spec: dict, settings: dict,
                 labels: str | None = None, files_from: str | None = None, recursive: bool = True,
                 actors: int | None = None, threads: int = 1, device: str = "cpu",
                 decode: Callable | None = None) -> RunReport:
    """``genrekit embed --ray``: a feature table (one row per segment) written by a Ray cluster."""
    import_ray()
    if labels:
        items = list_items(inputs, labels=labels)
    else:
        items = [{"path": path, "track": None, "label": None, "problem": problem}
                 for path, problem in list_files(inputs, None, recursive)]
    if files_from:
        items += [{"path": p, "track": None, "label": None, "problem": name_problem(p)} for p in read_file_list(files_from)]
    embedder = Embedder(spec, **settings)  # checks the spec once, here, and settles the sample rate
    decode = decode or partial(decode_segments, sr=embedder.sr, window=embedder.window, hop=embedder.hop,
                               last=embedder.last, offset=0.0, duration=None, max_windows=embedder.max_windows)
    settings = {**settings, "sample_rate": embedder.sr}
    return run("embed", [], items=items, address=address, output=output, decode=decode, actors=actors,
               threads=threads, device=device, stage_args={"spec": spec, "settings": settings},
               metadata=embedder.metadata)


def describe(report: RunReport) -> str:
    """The report as JSON (for scripts and the benchmark)."""
    return json.dumps(dataclasses.asdict(report))
