"""Model files of trained networks and resumable checkpoints (safetensors + JSON, no pickle): what
a run saves after each epoch and reads back to continue with identical results.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from genrekit.errors import UsageError

if TYPE_CHECKING:
    from genrekit.models.spec import ModelSpec
    from genrekit.training.config import TrainConfig


@dataclass
class _LoopState:
    """Progress of the epoch loop; everything a checkpoint must hold besides the tensors."""

    epoch: int = 0
    history: list = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    best_state: dict | None = None

    def record(self, row: dict, network: nn.Module, improved_by: float) -> None:
        self.epoch = row["epoch"]
        self.history.append(row)
        if improved_by < self.best_loss:
            self.best_loss, self.best_epoch, self.bad_epochs = improved_by, self.epoch, 0
            self.best_state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
        else:
            self.bad_epochs += 1

    def stopped(self, patience: int) -> bool:
        return bool(patience) and self.bad_epochs >= patience


def save_trained_model(path: str | Path, spec: ModelSpec, network: nn.Module) -> Path:
    """Write a trained network as a genrekit model file (see ``docs/model-format.md``).

    Parameters
    ----------
    path : str or Path
        Model path ``NAME`` (``NAME.json`` and ``NAME.safetensors`` are written atomically).
    spec : ModelSpec
        The model's spec (labels, rate, windows, feature, architecture, calibration, metrics).
    network : nn.Module
        Its weights are stored as ``network.<name>`` tensors.

    Returns
    -------
    Path
        The JSON file written.
    """
    from genrekit.models.files import save_model

    tensors = {f"network.{name}": t for name, t in network.state_dict().items()}
    return save_model(path, spec, tensors)


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """The two files of the checkpoint that belongs to a model path.

    Parameters
    ----------
    path : str or Path
        A model path ``NAME`` (with or without ``.json``/``.safetensors``) or a checkpoint path.

    Returns
    -------
    tuple of Path
        ``(NAME.ckpt.json, NAME.ckpt.safetensors)``.
    """
    path = Path(path)
    name = path.name
    for suffix in (".json", ".safetensors"):
        name = name.removesuffix(suffix)
    name = name.removesuffix(".ckpt")
    return path.with_name(f"{name}.ckpt.json"), path.with_name(f"{name}.ckpt.safetensors")


def write_checkpoint(config: TrainConfig, state: _LoopState, network: nn.Module, optimizer) -> Path:
    """Save what resuming needs: network, best network and optimizer tensors, loop state, config.

    The optimizer's per-parameter tensors go to safetensors as ``optimizer.<index>.<name>``;
    its hyper-parameters and scalars to the JSON (no pickle). Both files are written atomically.

    Parameters
    ----------
    config : TrainConfig
        The run; its ``out`` names the checkpoint.
    state : _LoopState
        Epoch, history and the best network so far.
    network : nn.Module
        The network being trained.
    optimizer : torch.optim.Optimizer
        Its state is saved.

    Returns
    -------
    Path
        The checkpoint's JSON file.
    """
    from safetensors.torch import save

    from genrekit.utils import atomic_write_bytes, atomic_write_text, finite_json

    tensors = {f"network.{k}": v for k, v in network.state_dict().items()}
    if state.best_state is not None:
        tensors.update({f"best.{k}": v for k, v in state.best_state.items()})
    optimizer_state = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, values in optimizer_state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    spec = {
        "format": "genrekit-checkpoint",
        "config": config.to_dict(),
        "epoch": state.epoch,
        "history": state.history,
        "best_loss": state.best_loss if math.isfinite(state.best_loss) else None,
        "best_epoch": state.best_epoch,
        "bad_epochs": state.bad_epochs,
        "optimizer": {"param_groups": optimizer_state["param_groups"], "scalars": scalars},
    }
    json_path, tensor_path = checkpoint_paths(config.out)
    contiguous = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_write_bytes(tensor_path, save(contiguous), parents=True)
    atomic_write_text(json_path, json.dumps(finite_json(spec), indent=1, allow_nan=False) + "\n", parents=True)
    return json_path


def read_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`write_checkpoint`.

    Parameters
    ----------
    path : str or Path
        A model path ``NAME`` or one of its checkpoint files.

    Returns
    -------
    dict
        ``{"spec": checkpoint JSON, "tensors": {name: Tensor}, "path": JSON file}``.

    Raises
    ------
    UsageError
        A file is missing, unreadable, or not a genrekit checkpoint.
    """
    from safetensors.torch import load_file

    json_path, tensor_path = checkpoint_paths(path)
    for file in (json_path, tensor_path):
        if not file.is_file():
            raise UsageError(f"{file}: checkpoint not found")
    try:
        spec = json.loads(json_path.read_text(encoding="utf-8"))
        tensors = load_file(str(tensor_path))
    except Exception as exc:  # noqa: BLE001 - any decoding failure means a bad checkpoint
        raise UsageError(f"{json_path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None
    if spec.get("format") != "genrekit-checkpoint":
        raise UsageError(f"{json_path}: not a genrekit checkpoint")
    return {"spec": spec, "tensors": tensors, "path": json_path}


def _restore(checkpoint: dict, network: nn.Module, optimizer, device) -> _LoopState:
    spec, tensors = checkpoint["spec"], checkpoint["tensors"]

    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    network.load_state_dict(part("network."))
    state: dict[int, dict] = {}
    for name, value in part("optimizer.").items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in spec["optimizer"]["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": state, "param_groups": spec["optimizer"]["param_groups"]})
    best = part("best.")
    best_loss = spec.get("best_loss")
    return _LoopState(
        epoch=int(spec["epoch"]),
        history=list(spec["history"]),
        best_loss=math.inf if best_loss is None else float(best_loss),
        best_epoch=int(spec["best_epoch"]),
        bad_epochs=int(spec["bad_epochs"]),
        best_state=best or None,
    )


#: Settings that may change when resuming (the rest define the run and must not).
RESUMABLE_CHANGES = ("epochs", "patience", "out", "name", "checkpoint", "device", "cache_dir", "calibrate")


def _check_same_recipe(config: TrainConfig, previous: TrainConfig, where) -> None:
    now, before = config.to_dict(), previous.to_dict()
    for key in now:
        if key not in RESUMABLE_CHANGES and now[key] != before[key]:
            raise UsageError(f"{where}: checkpoint was made with {key}={before[key]!r}, not {now[key]!r}")
