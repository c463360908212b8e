"""A genre model in memory: :class:`GenreModel` (feature front end + network + :class:`ModelSpec`)
and :func:`load_model` for model files and bundled model names; :meth:`GenreModel.save` writes
what :func:`load_model` reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genrekit.audio.segments import SegmentSettings
from genrekit.errors import ModelError, UsageError
from genrekit.models.files import (
    check_weights_fit,
    default_model_path,
    read_model_spec,
    read_weights,
    resolve_model_path,
    save_model,
)
from genrekit.models.spec import ModelSpec


def _spec_field(name: str, doc: str) -> property:
    """A read-only attribute of the model that is the field ``name`` of its spec."""
    return property(lambda self: getattr(self.spec, name), doc=doc)


@dataclass
class GenreModel:
    """A genre classifier: feature front end + network + its :class:`ModelSpec`.

    Audio is cut into ``spec.segment.window``-second windows at ``spec.sample_rate`` Hz; each
    window goes through ``feature`` (an ``nn.Module`` mapping ``(batch, samples)`` to features)
    and ``network`` (features to logits ``(batch, n_classes)``). Probabilities are
    ``softmax(logits / temperature)``.

    A model whose feature is the MSD_musicnn taggram (:attr:`gives_taggram`) can also report
    styles, and, when its file carries a ``not_music`` block, which segments and files are not
    music (:mod:`genrekit.inference.taggram`), from the taggram it computes anyway.

    Parameters
    ----------
    spec : ModelSpec or dict
        Labels, sample rate, segmenting, feature and architecture specs, calibration, records
        (a dict is checked and typed by :meth:`ModelSpec.from_dict`).
    feature, network : nn.Module
        The front end and the classifier, in eval mode.
    source : Path or None
        The file it was loaded from.
    """

    spec: ModelSpec
    feature: nn.Module
    network: nn.Module
    source: Path | None = None
    _device: torch.device = field(default_factory=lambda: torch.device("cpu"), repr=False)
    _model_id: str | None = field(default=None, repr=False, compare=False)
    #: names (without ``feature.``) of the front-end tensors the model file carried
    _stored_feature: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self):
        if isinstance(self.spec, dict):  # a model assembled by hand from a spec's JSON
            self.spec = ModelSpec.from_dict(self.spec, where=self.spec.get("name", "model"))

    @property
    def labels(self) -> list[str]:
        """Class names; column ``i`` of the probabilities is ``labels[i]``."""
        return list(self.spec.labels)

    name = _spec_field("name", "The model's name, as outputs show it (str).")
    sample_rate = _spec_field("sample_rate", "Audio is resampled to this rate (Hz, int) before it is cut into windows.")
    segment = _spec_field("segment", "How this model cuts audio into windows (:class:`SegmentSettings`).")
    temperature = _spec_field("temperature", "Calibration temperature (float): probabilities are "
                                             "``softmax(logits / temperature)``.")

    @property
    def window(self) -> float:
        """Window length in seconds."""
        return self.segment.window

    @property
    def hop(self) -> float:
        """Seconds between window starts."""
        return self.segment.hop

    @property
    def device(self) -> torch.device:
        """Where the front end and the network run (see :meth:`to`)."""
        return self._device

    @property
    def gives_taggram(self) -> bool:
        """Whether the feature output is the MSD_musicnn taggram (styles and not-music need it)."""
        from genrekit.inference.taggram import computes_msd_taggram

        return computes_msd_taggram(self.spec.feature)

    @property
    def not_music(self) -> dict | None:
        """The not-music detector of this model (the ``not_music`` block of its file), or None."""
        return self.spec.not_music

    @property
    def model_id(self) -> str:
        """``NAME@sha256:DIGEST``: a digest of everything that decides an answer (weights of the
        front end and network, labels, calibration, sample rate, segmenting, feature and
        architecture specs), so that stored results of another model are never reused, even one
        of the same name and creation time. Computed once per model object."""
        if self._model_id is None:
            self._model_id = f"{self.name}@sha256:{self.content_digest()[:32]}"
        return self._model_id

    def content_digest(self) -> str:
        """SHA-256 of the weights and the answer-deciding parts of the spec.

        Returns
        -------
        str
            64 hex digits (:attr:`model_id` keeps the first 32).
        """
        digest = hashlib.sha256()
        digest.update(json.dumps(self.spec.decisive(), sort_keys=True, default=str).encode())
        for part, module in (("feature", self.feature), ("network", self.network)):
            for name, tensor in sorted(module.state_dict().items()):
                digest.update(f"{part}.{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                flat = tensor.detach().cpu().contiguous().reshape(-1)
                if flat.numel():
                    digest.update(flat.view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def to(self, device: str | torch.device) -> "GenreModel":
        """Run the front end and the network on ``device``; inputs are moved there and outputs come back
        on the CPU.

        Parameters
        ----------
        device : str or torch.device
            ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.

        Returns
        -------
        GenreModel
            ``self``.

        Raises
        ------
        UsageError
            No such device, or not one this PyTorch can use (e.g. ``"cuda"`` without a GPU).
        """
        try:
            device = torch.device(device)
            self.feature.to(device)
            self.network.to(device)
        except (RuntimeError, AssertionError) as exc:  # torch asserts when built without CUDA
            raise UsageError(f"device {str(device)!r} cannot be used here ({str(exc).splitlines()[0]})") from None
        self._device = device
        return self

    def save(self, path: str | Path) -> Path:
        """Write this model as ``NAME.json`` + ``NAME.safetensors`` (what :func:`load_model` reads).

        Parameters
        ----------
        path : str or Path
            ``NAME``, ``NAME.json`` or ``NAME.safetensors``; both files are written atomically.

        Returns
        -------
        Path
            The JSON file written.

        Examples
        --------
        >>> import os, tempfile
        >>> model = load_model()
        >>> saved = model.save(os.path.join(tempfile.mkdtemp(), "copy"))
        >>> saved.name, load_model(saved).model_id == model.model_id
        ('copy.json', True)
        """
        tensors = {f"network.{name}": t for name, t in self.network.state_dict().items()}
        state = self.feature.state_dict()
        tensors.update({f"feature.{name}": state[name] for name in self._stored_feature if name in state})
        return save_model(path, self.spec, tensors)

    @torch.inference_mode()
    def segment_logits(self, segments: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Uncalibrated logits of audio windows.

        Parameters
        ----------
        segments : torch.Tensor or np.ndarray
            Audio windows at :attr:`sample_rate` Hz, float32 in [-1, 1], shape
            ``(batch, window_samples)`` (``window_samples = window * sample_rate``).

        Returns
        -------
        torch.Tensor
            float32 on the CPU, shape ``(batch, n_classes)``.
        """
        segments = torch.as_tensor(segments, dtype=torch.float32, device=self._device)
        return self.network(self.feature(segments)).cpu()

    def segment_probabilities(self, segments: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Calibrated class probabilities of audio windows, ``softmax(logits / temperature)``.

        Parameters
        ----------
        segments : torch.Tensor or np.ndarray
            Audio windows at :attr:`sample_rate` Hz, float32 in [-1, 1], shape
            ``(batch, window_samples)`` (``window_samples = window * sample_rate``).

        Returns
        -------
        torch.Tensor
            float32 on the CPU, shape ``(batch, n_classes)``; rows sum to 1.
        """
        return torch.softmax(self.segment_logits(segments) / self.temperature, dim=-1)

    @torch.inference_mode()
    def segment_outputs(self, segments: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated probabilities of audio windows, and the tag rows the model computes with them.

        Parameters
        ----------
        segments : torch.Tensor or np.ndarray
            Audio windows at :attr:`sample_rate` Hz, float32 in [-1, 1], shape
            ``(batch, window_samples)`` (``window_samples = window * sample_rate``).

        Returns
        -------
        probabilities : np.ndarray
            float32, shape ``(batch, n_classes)``.
        rows : np.ndarray or None
            float, ``(batch, 50 + extra)``: when :attr:`gives_taggram`, the taggram (the
            feature output itself, 50 columns) followed by whatever else the not-music detector
            reads from the same network pass (:func:`genrekit.inference.taggram.tag_rows`);
            else None.
        """
        from genrekit.inference.taggram import extra_inputs, tag_rows

        if not self.gives_taggram:
            return self.segment_probabilities(segments).numpy(), None
        samples = torch.as_tensor(segments, dtype=torch.float32, device=self._device)
        if extra_inputs(self.not_music):  # every layer of one pass: the taggram and the detector's inputs
            layers = self.feature.network(self.feature.frontend(samples))
            features = layers["taggram"]
            rows = tag_rows({k: layers[k].cpu().numpy() for k in ("taggram", "penultimate")}, samples.cpu().numpy(),
                            self.not_music, self.sample_rate)
        else:
            features = self.feature(samples)
            rows = features.cpu().numpy().astype(np.float64)
        probabilities = torch.softmax(self.network(features) / self.temperature, dim=-1).cpu().numpy()
        return probabilities, rows

    def predict(self, audio, sr: int | None = None, **options):
        """Tell the genre of a file or a waveform.

        Parameters
        ----------
        audio : str, path-like or np.ndarray
            A file in any format genrekit reads, or samples ``(n,)``, ``(channels, n)`` or
            ``(n, channels)``: float (±1 full scale) or integer PCM.
        sr : int or None
            Sample rate of an array in Hz (required for arrays; files know their own).
        **options
            ``top_k`` (3), ``aggregate`` (``"mean"`` or ``"vote"``), ``segments`` (False: no
            per-window timeline), ``offset`` and ``max_duration`` (seconds), ``styles`` (False),
            ``batch_size``: see :func:`genrekit.inference.predict.predict_audio`.

        Returns
        -------
        Prediction
            ``genre`` (None for silence and for audio that is not music), its calibrated
            ``confidence``, ``top`` ``[(genre, probability), ...]``, ``uncertain``, ``not_music``,
            ``duration`` in seconds, and ``segments`` when asked; ``to_dict()`` gives the JSON of
            ``genrekit predict --format json``.

        Raises
        ------
        UsageError
            Bad options (negative ``offset``, non-positive ``max_duration`` or ``sr``, an array of an
            unusable dtype or shape).
        AudioError
            A file that cannot be decoded (missing, not audio, corrupt, empty, unsupported).

        Examples
        --------
        Five seconds of white noise at 22.05 kHz, resampled to the model's rate and cut into two
        3 s windows (the second padded): the default model calls it not music.

        >>> import numpy as np
        >>> import genrekit
        >>> model = genrekit.load_model()
        >>> noise = 0.1 * np.random.default_rng(0).standard_normal(5 * 22050).astype(np.float32)
        >>> result = model.predict(noise, sr=22050, segments=True)
        >>> result.genre, result.not_music, result.duration, len(result.segments)
        (None, True, 5.0, 2)

        A file works the same way (its own rate is used), and ``to_dict`` gives the JSON record:

        >>> import os, tempfile
        >>> import soundfile as sf
        >>> path = os.path.join(tempfile.mkdtemp(), "noise.flac")
        >>> sf.write(path, noise, 22050)
        >>> record = model.predict(path).to_dict()
        >>> record["path"] == path, record["genre"], record["not_music"]
        (True, None, True)
        """
        from genrekit.inference.predict import predict_audio

        return predict_audio(self, audio, sr=sr, **options)


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> GenreModel:
    """Load a model from ``NAME.json`` / ``NAME.safetensors`` / ``NAME``, or a bundled model by name.

    Parameters
    ----------
    path : str, Path or None
        A model file, or a bundled model's name. ``None`` loads the bundled default;
        ``"default"`` (or any name in :func:`~genrekit.models.files.bundled_model_names`) the
        bundled model of that name, unless a model file of that name exists in the current folder.
    device : str or torch.device
        Where the model runs (:meth:`GenreModel.to`); default the CPU.

    Returns
    -------
    GenreModel

    Raises
    ------
    ModelError
        The files are missing or malformed, a field is out of range, or the weights do not fit
        the architecture (checked from the safetensors header before any layer is allocated).

    Examples
    --------
    >>> import genrekit
    >>> model = genrekit.load_model()  # the bundled default; or load_model("my-model.json")
    >>> model.name, model.sample_rate, model.window
    ('gtzan-msd-taggram-mlp', 16000, 3.0)
    >>> model.labels
    ['blues', 'classical', 'country', 'disco', 'hiphop', 'jazz', 'metal', 'pop', 'reggae', 'rock']
    >>> genrekit.load_model("no-such-model.json")
    Traceback (most recent call last):
        ...
    genrekit.errors.ModelError: no-such-model.json: model file not found...
    """
    from genrekit.features.registry import build_feature
    from genrekit.models.registry import build_model

    if path is None:
        path = default_model_path()
        if not path.is_file():
            raise ModelError("this genrekit has no bundled default model; pass --model PATH")
    else:
        path = resolve_model_path(path)
    spec = read_model_spec(path)
    if spec.not_music is not None:
        from genrekit.inference.taggram import check_not_music_block

        check_not_music_block(spec.not_music, spec.feature, path)
    check_weights_fit(spec, path)
    tensors = read_weights(path)
    try:
        feature = _build_feature_stack(spec.feature, build_feature)
        network = build_model(spec.architecture, n_classes=len(spec.labels))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: cannot build the model it describes ({exc})") from None
    _load_state(network, tensors, prefix="network.", where=path)
    feature_names = _load_state(feature, tensors, prefix="feature.", where=path, strict=False)
    feature.eval()
    network.eval()
    model = GenreModel(spec=spec, feature=feature, network=network, source=Path(path),
                       _stored_feature=feature_names)
    return model.to(device)


class MultiFeature(nn.Module):
    """Several front ends on the same audio, for multi-input (``parallel``) models.

    Parameters
    ----------
    modules : list of nn.Module
        Feature modules, in the order of the network's inputs.
    """

    def __init__(self, modules: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(modules)

    def forward(self, samples: torch.Tensor) -> list[torch.Tensor]:
        """Every front end's features of the same windows.

        Parameters
        ----------
        samples : torch.Tensor
            Audio windows, shape ``(batch, window_samples)``.

        Returns
        -------
        list of torch.Tensor
            One feature batch per front end.
        """
        return [branch(samples) for branch in self.branches]


def _build_feature_stack(feature_spec, build_feature) -> nn.Module:
    if isinstance(feature_spec, (list, tuple)):
        return MultiFeature([build_feature(item) for item in feature_spec])
    return build_feature(feature_spec)


def _load_state(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, where,
                strict=True) -> tuple[str, ...]:
    """Load the ``prefix`` tensors into ``module``; returns their names (without the prefix)."""
    state = {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}
    if not state and not strict:
        return ()
    try:
        module.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[0]
        raise ModelError(f"{where}: weights do not fit the architecture ({first_line})") from None
    return tuple(state)
