"""Pretrained musicnn weights. The default model's (MSD_musicnn) ship with genrekit, converted
to safetensors (``genrekit/assets/musicnn/``); the others come from the TensorFlow checkpoints of
the ``musicnn`` 0.1.0 package, converted once into the genrekit cache and loaded from there.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from genrekit.errors import ModelError, UsageError
from genrekit.features.musicnn.network import (
    CONSTANT_FILTER_TOLERANCE,
    MODELS,
    Musicnn,
    MusicnnVgg,
)

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install --no-deps musicnn==0.1.0"

SOURCE = "musicnn 0.1.0 (ISC licence, Music Technology Group, Universitat Pompeu Fabra)"


_TF_BN_FIELDS = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


_CACHE_FORMAT = 1


def _tf_numbered(kind: str, count: int) -> list[str]:
    """TF names of the ``count`` layers of a kind, numbered in creation order."""
    return [kind if index == 0 else f"{kind}_{index}" for index in range(count)]


def _tf_layers(name: str) -> list[tuple[str, str, str]]:
    """``(TF layer, torch module, kind)`` for every layer with weights, from models.py."""
    if name.endswith("_vgg"):
        norms = ["input_bn"] + [f"blocks.{i}.bn" for i in range(5)]
        return (
            [(tf, torch_name, "bn") for tf, torch_name in zip(_tf_numbered("batch_normalization", 6), norms)]
            + [(f"{i + 1}CNN", f"blocks.{i}.conv", "conv2d") for i in range(5)]
            + [("dense", "output", "dense")]
        )
    norms = ["input_bn", "timbral.0.bn", "timbral.1.bn", "temporal.0.bn", "temporal.1.bn", "temporal.2.bn",
             "midend.0.bn", "midend.1.bn", "midend.2.bn", "pool_bn", "dense_bn"]
    convs = ["timbral.0.conv", "timbral.1.conv", "temporal.0.conv", "temporal.1.conv", "temporal.2.conv",
             "midend.0.conv", "midend.1.conv", "midend.2.conv"]
    return (
        [(tf, torch_name, "bn") for tf, torch_name in zip(_tf_numbered("batch_normalization", 11), norms)]
        + [(tf, torch_name, "conv1d" if torch_name.startswith("midend") else "conv2d")
           for tf, torch_name in zip(_tf_numbered("conv2d", 8), convs)]
        + [("dense", "dense", "dense"), ("dense_1", "output", "dense")]
    )


def _tf_variable_names(name: str) -> list[str]:
    fields = {"bn": list(_TF_BN_FIELDS), "conv1d": ["kernel", "bias"], "conv2d": ["kernel", "bias"], "dense": ["kernel", "bias"]}
    return [f"{tf}/{field}" for tf, _, kind in _tf_layers(name) for field in fields[kind]]


def convert_checkpoint(weights: dict[str, np.ndarray], name: str = "MSD_musicnn") -> dict[str, torch.Tensor]:
    """Torch state dict (`Musicnn` or `MusicnnVgg`) from the variables of a musicnn checkpoint.

    TF stores convolution kernels HWIO (H = time, W = mel band) and dense kernels
    ``(in, out)``; torch wants OIHW (OIL for the mid-end's 1-D convolutions, whose kernel
    spans all channels) and ``(out, in)``. Adam slots and other optimizer state are ignored.

    Parameters
    ----------
    weights : dict of str to np.ndarray
        The checkpoint's variables by TF name (:func:`~genrekit.features.musicnn.tfcheckpoint.read_checkpoint`).
    name : str
        ``"MSD_musicnn"``, ``"MTT_musicnn"``, ``"MSD_vgg"`` or ``"MTT_vgg"``.

    Returns
    -------
    dict of str to torch.Tensor
        float32 state dict of :class:`Musicnn` (or :class:`MusicnnVgg` for the VGG models).

    Raises
    ------
    ModelError
        A variable is missing.
    """
    state = {}

    def take(variable: str) -> np.ndarray:
        if variable not in weights:
            raise ModelError(f"musicnn checkpoint has no variable {variable!r}")
        return np.asarray(weights[variable], dtype=np.float32)

    for tf, layer, kind in _tf_layers(name):
        if kind == "bn":
            for tf_field, field in _TF_BN_FIELDS.items():
                state[f"{layer}.{field}"] = torch.from_numpy(take(f"{tf}/{tf_field}"))
            state[f"{layer}.num_batches_tracked"] = torch.tensor(0)
            continue
        kernel = take(f"{tf}/kernel")
        if kind == "conv1d":  # (7, in channels, 1, out)
            kernel = kernel[:, :, 0, :].transpose(2, 1, 0)
        elif kind == "conv2d":
            kernel = kernel.transpose(3, 2, 0, 1)
        else:
            kernel = kernel.T
        state[f"{layer}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        state[f"{layer}.bias"] = torch.from_numpy(take(f"{tf}/bias"))
    return state


def _checkpoint_prefix(name: str) -> Path | None:
    """Folder of the installed musicnn package's checkpoint for ``name`` (never imported:
    ``musicnn`` imports TensorFlow)."""
    try:
        distribution = importlib.metadata.distribution("musicnn")
    except importlib.metadata.PackageNotFoundError:
        return None
    folder = Path(distribution.locate_file(f"musicnn/{name}"))
    return folder if (folder / ".index").is_file() else None


def _source_digest(prefix: Path) -> str:
    digest = hashlib.sha256()
    for part in (".index", ".data-00000-of-00001"):
        with open(prefix / part, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _read_meta(path: Path) -> dict | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == _CACHE_FORMAT else None


def _not_installed(name: str) -> ModelError:
    return ModelError(f"musicnn weights for {name} not found: install them with `{INSTALL_HINT}`")


def convert_installed(name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The installed ``musicnn`` package's checkpoint for ``name`` as a torch state dict, with
    the safetensors metadata that records where it came from (``model``, ``source``,
    ``source_sha256`` of the checkpoint files).

    Parameters
    ----------
    name : str
        ``"MSD_musicnn"``, ``"MTT_musicnn"``, ``"MSD_vgg"`` or ``"MTT_vgg"``.

    Returns
    -------
    state : dict of str to torch.Tensor
    metadata : dict of str to str

    Raises
    ------
    ModelError
        The ``musicnn`` package is not installed.
    """
    from genrekit.features.musicnn.tfcheckpoint import read_checkpoint

    prefix = _checkpoint_prefix(name)
    if prefix is None:
        raise _not_installed(name)
    variables = read_checkpoint(prefix, _tf_variable_names(name))
    metadata = {"model": name, "source": SOURCE, "source_sha256": _source_digest(prefix)}
    return convert_checkpoint(variables, name), metadata


def bundled_weights(name: str) -> Path | None:
    """The converted weights of ``name`` that ship inside genrekit (the default model's backbone,
    MSD_musicnn), or None for the models that come from the ``musicnn`` package.

    Parameters
    ----------
    name : str
        ``"MSD_musicnn"``, ``"MTT_musicnn"``, ``"MSD_vgg"`` or ``"MTT_vgg"``.

    Returns
    -------
    Path or None
        ``genrekit/assets/musicnn/<name>.safetensors``.
    """
    path = Path(str(resources.files("genrekit") / "assets" / "musicnn" / f"{name}.safetensors"))
    return path if path.is_file() else None


def _convert_to_cache(name: str, weights_path: Path, meta_path: Path) -> None:
    from safetensors.torch import save

    from genrekit.utils import atomic_write_bytes, atomic_write_text

    logger.info(f"converting musicnn {name} weights once into {weights_path}")
    state, metadata = convert_installed(name)
    atomic_write_bytes(weights_path, save(state, metadata={"model": name}), parents=True)
    meta = {"format": _CACHE_FORMAT, "tags": list(MODELS[name]), **metadata}
    atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n", parents=True)  # written last: the commit


def _cached_weights(name: str, folder: Path) -> tuple[Path, list[str]]:
    """``(weights file, tags)`` of ``name`` in the cache ``folder``, converted first from the
    installed ``musicnn`` package when the cache lacks it or holds another checkpoint's."""
    weights_path, meta_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    prefix, meta = _checkpoint_prefix(name), _read_meta(meta_path)
    if prefix is not None:
        if meta is None or meta.get("source_sha256") != _source_digest(prefix) or not weights_path.is_file():
            _convert_to_cache(name, weights_path, meta_path)
            meta = _read_meta(meta_path)
    elif meta is None or not weights_path.is_file():
        raise _not_installed(name)
    return weights_path, meta.get("tags", MODELS[name])


def load_musicnn(
    name: str = "MSD_musicnn",
    *,
    tolerance: float = CONSTANT_FILTER_TOLERANCE,
    cache_dir: str | Path | None = None,
) -> Musicnn | MusicnnVgg:
    """A pretrained musicnn model in eval mode.

    MSD_musicnn's weights ship with genrekit (`bundled_weights`) and are loaded from there. For
    the other models, the first call converts the checkpoint of the installed ``musicnn`` 0.1.0
    package into ``<cache_dir>/<name>.safetensors`` (+ ``<name>.json`` holding the source
    checksum); later calls load that file, converting again only when the installed checkpoint
    changes. Once converted, the package may be uninstalled. Weights © MTG-UPF 2019, ISC licence
    (see ``genrekit/assets/musicnn-LICENSE.md``).

    Parameters
    ----------
    name : str
        ``"MSD_musicnn"`` (Million Song Dataset tags) or ``"MTT_musicnn"`` (MagnaTagATune);
        ``"MSD_vgg"`` and ``"MTT_vgg"`` give the VGG baselines (`MusicnnVgg`).
    tolerance : float
        See `Musicnn` (not used by the VGG models); the default reproduces the original to
        float32 round-off.
    cache_dir : str or Path, optional
        Default ``genrekit.utils.cache_root() / "musicnn"`` (not used for bundled weights).

    Returns
    -------
    Musicnn or MusicnnVgg
        Frozen weights, eval mode; takes log-mel patches ``(batch, 187, 96)``.

    Raises
    ------
    UsageError
        Unknown model name.
    ModelError
        musicnn is not installed and nothing is cached, or the cached weights are unusable.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from genrekit.utils import cache_root

    if name not in MODELS:
        raise UsageError(f"unknown musicnn model {name!r}; expected one of {', '.join(MODELS)}")
    weights_path, tags = bundled_weights(name), MODELS[name]
    remedy = "reinstall genrekit"  # a damaged installation
    if weights_path is None:
        weights_path, tags = _cached_weights(name, Path(cache_dir) if cache_dir is not None else cache_root() / "musicnn")
        remedy = "delete the file"  # converted again at the next call
    architecture = MusicnnVgg if name.endswith("_vgg") else Musicnn
    model = architecture(tags, name, tolerance)
    try:
        model.load_state_dict(load_file(weights_path))
    except (RuntimeError, OSError, SafetensorError) as exc:
        detail = str(exc).splitlines()[0]
        raise ModelError(f"{weights_path}: unusable musicnn weights, {remedy} ({detail})") from None
    return model.eval()


def _cached_model(name: str) -> Musicnn:
    if name not in _MODELS_IN_USE:
        _MODELS_IN_USE[name] = load_musicnn(name)
    return _MODELS_IN_USE[name]


_MODELS_IN_USE: dict[str, Musicnn] = {}
