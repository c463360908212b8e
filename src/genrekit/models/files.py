"""Model files: ``NAME.json`` (a :class:`~genrekit.models.spec.ModelSpec`: labels, segmentation,
feature, architecture, calibration, metrics, split) and ``NAME.safetensors`` (every tensor).
Nothing is pickled, so loading a stranger's model cannot run code. The format:
``docs/model-format.md``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from genrekit.errors import ModelError
from genrekit.models.spec import FORMAT, FORMAT_VERSION, ModelSpec, parse_model_json
from genrekit.version import __version__

if TYPE_CHECKING:  # torch is imported by the functions that need it: `genrekit --version` does not
    import torch

__all__ = ["FORMAT", "FORMAT_VERSION", "DEFAULT_MODEL_NAME", "bundled_models_dir", "default_model_path",
           "default_model_id", "bundled_model_names", "resolve_model_path", "model_paths", "save_model", "read_model_spec",
           "read_weight_shapes", "check_weights_fit", "read_weights",
           "read_model_files"]

DEFAULT_MODEL_NAME = "default"


def bundled_models_dir() -> Path:
    """The folder of the models shipped inside the installed package.

    Returns
    -------
    Path
        ``genrekit/assets/models``.
    """
    return Path(str(resources.files("genrekit") / "assets" / "models"))


def default_model_path() -> Path:
    """The bundled default model's JSON file (inside the installed package).

    Returns
    -------
    Path
        ``genrekit/assets/models/default.json``.
    """
    return bundled_models_dir() / f"{DEFAULT_MODEL_NAME}.json"


def default_model_id() -> str:
    """Which model an installation carries, without loading it.

    Returns
    -------
    str
        The bundled default model's name and the first 12 hex digits of the SHA-256 of its
        tensors, e.g. ``"gtzan-msd-taggram-mlp sha256:1a2b3c4d5e6f"``.

    Raises
    ------
    ModelError
        The bundled model's files cannot be read.
    """
    json_path, tensors_path = model_paths(default_model_path())
    try:
        name = json.loads(json_path.read_text(encoding="utf-8")).get("name", DEFAULT_MODEL_NAME)
        digest = hashlib.sha256(tensors_path.read_bytes()).hexdigest()[:12]
    except (OSError, ValueError) as exc:
        raise ModelError(f"{json_path}: unreadable bundled model ({exc})") from None
    return f"{name} sha256:{digest}"


def bundled_model_names() -> list[str]:
    """Names of the models shipped inside the package.

    Returns
    -------
    list of str
        Sorted (``["default", ...]``); empty when the package carries none.
    """
    folder = bundled_models_dir()
    if not folder.is_dir():
        return []
    return sorted(item.name.removesuffix(".json") for item in folder.iterdir() if item.name.endswith(".json"))


def resolve_model_path(path: str | Path) -> Path:
    """``path`` itself, or the bundled model it names (``"default"``) when no such file exists here.

    A model file on disk wins over a bundled model of the same name.

    Parameters
    ----------
    path : str or Path
        A model path, or a bare bundled model name.

    Returns
    -------
    Path

    Raises
    ------
    ModelError
        A bare name that is neither a file here nor a bundled model (the message lists the
        bundled names).
    """
    path = Path(path)
    if model_paths(path)[0].is_file() or path.parent != Path(".") or path.suffix in (".json", ".safetensors"):
        return path
    bundled = bundled_models_dir() / f"{path.name}.json"
    if bundled.is_file():
        return bundled
    names = ", ".join(bundled_model_names()) or "none in this installation"
    raise ModelError(f"{path}: no such model file, nor a bundled model name (bundled: {names})")


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """The two files of a model.

    Parameters
    ----------
    path : str or Path
        ``NAME``, ``NAME.json`` or ``NAME.safetensors``.

    Returns
    -------
    tuple of Path
        ``(NAME.json, NAME.safetensors)``.

    Examples
    --------
    >>> [str(p) for p in model_paths("models/my-head.json")]
    ['models/my-head.json', 'models/my-head.safetensors']
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".json", ".safetensors") else path
    return stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".safetensors")


def save_model(path: str | Path, spec: ModelSpec | dict, tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``spec`` (JSON) and ``tensors`` (safetensors) atomically; returns the JSON path.

    A missing folder is created (training outputs are result trees); see
    :func:`genrekit.utils.atomic_write` for links, FIFOs and read-only files.

    Parameters
    ----------
    path : str or Path
        ``NAME``, ``NAME.json`` or ``NAME.safetensors``: both files are written.
    spec : ModelSpec or dict
        The model description; a dict must hold at least ``labels``, ``sample_rate``,
        ``segment``, ``feature`` and ``architecture`` (``docs/model-format.md``) and is checked
        as :func:`load_model` checks it. ``genrekit_version`` is set to this version and
        ``created`` to now unless the spec has one.
    tensors : dict of str to Tensor
        ``network.<state_dict key>`` (and optionally ``feature.<key>``) tensors.

    Returns
    -------
    Path
        The JSON file written.

    Raises
    ------
    ModelError
        ``spec`` is not a valid model description.
    """
    from safetensors.torch import save

    from genrekit.utils import atomic_write_bytes, atomic_write_text

    if not isinstance(spec, ModelSpec):
        spec = ModelSpec.from_dict(spec, where="model spec")
    created = spec.created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    spec = replace(spec, genrekit_version=__version__, created=created)
    json_path, weights_path = model_paths(path)
    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    atomic_write_bytes(weights_path, save(contiguous, metadata={"format": FORMAT}), parents=True)
    atomic_write_text(json_path, spec.to_json(), parents=True)
    return json_path


def read_model_spec(path: str | Path) -> ModelSpec:
    """The checked :class:`ModelSpec` of a model file (JSON only; no tensor is read).

    Parameters
    ----------
    path : str or Path
        ``NAME``, ``NAME.json`` or ``NAME.safetensors``.

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelError
        The file is missing, not a genrekit model description, or a field is wrong.
    """
    json_path = _existing(model_paths(path)[0])
    try:
        text = json_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(f"{json_path}: not a genrekit model description ({exc})") from None
    return parse_model_json(text, where=str(json_path))


def read_weight_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a model's safetensors header, without reading the tensors.

    Parameters
    ----------
    path : str or Path
        ``NAME``, ``NAME.json`` or ``NAME.safetensors``.

    Returns
    -------
    dict of str to tuple of int
        ``{tensor name: shape}``.

    Raises
    ------
    ModelError
        The weights file is missing or unreadable.
    """
    from safetensors import SafetensorError, safe_open

    weights_path = _existing(model_paths(path)[1])
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights_path}: unreadable weights ({exc})") from None


def check_weights_fit(spec: ModelSpec, path: str | Path) -> None:
    """Refuse a model whose ``network.*`` tensors are not those of ``spec.architecture``.

    Names and shapes come from the safetensors header, and the network is built on PyTorch's meta
    device (nothing allocated), so a wrong ``hidden`` or ``input_shape`` is one clear error, quickly.

    Parameters
    ----------
    spec : ModelSpec
        The model's checked spec.
    path : str or Path
        Its files (``NAME``, ``NAME.json`` or ``NAME.safetensors``).

    Raises
    ------
    ModelError
        The architecture cannot be built, or a tensor is missing, extra or of another shape.
    """
    from genrekit.models.registry import state_shapes

    try:
        expected = state_shapes(spec.architecture, len(spec.labels))
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, OverflowError, RuntimeError, NotImplementedError) as exc:
        raise ModelError(f"{path}: cannot build the model it describes ({str(exc).splitlines()[0]})") from None
    stored = {name.removeprefix("network."): shape for name, shape in read_weight_shapes(path).items()
              if name.startswith("network.")}
    for name in sorted(set(expected) | set(stored)):
        if name not in stored:
            problem = f"tensor network.{name} missing"
        elif name not in expected:
            problem = f"unexpected tensor network.{name}"
        elif tuple(expected[name]) != tuple(stored[name]):
            problem = (f"network.{name} is {list(stored[name])} in the weights file, "
                       f"{list(expected[name])} in the architecture")
        else:
            continue
        raise ModelError(f"{path}: weights do not fit the architecture ({problem})")


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model's safetensors file.

    Parameters
    ----------
    path : str or Path
        ``NAME``, ``NAME.json`` or ``NAME.safetensors``.

    Returns
    -------
    dict of str to torch.Tensor
        ``network.<key>`` and ``feature.<key>`` tensors, on the CPU.

    Raises
    ------
    ModelError
        The weights file is missing or unreadable.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path = _existing(model_paths(path)[1])
    try:
        return load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights_path}: unreadable weights ({exc})") from None


def read_model_files(path: str | Path) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    """A model's checked spec and its tensors.

    Parameters
    ----------
    path : str or Path
        ``NAME``, ``NAME.json`` or ``NAME.safetensors``.

    Returns
    -------
    spec : ModelSpec
    tensors : dict of str to torch.Tensor

    Raises
    ------
    ModelError
        A file is missing or malformed.
    """
    return read_model_spec(path), read_weights(path)


def _existing(file: Path) -> Path:
    if not file.is_file():
        raise ModelError(f"{file}: model file not found")
    return file
