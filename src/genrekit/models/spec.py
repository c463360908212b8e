"""The description of a genre model, :class:`ModelSpec`: the one place where a model file's JSON
is turned into typed fields (and checked) and written back (``docs/model-format.md``).

Like whisper's ``ModelDimensions``, a frozen dataclass: code reads ``spec.labels``,
``spec.sample_rate``, ``spec.segment`` (a :class:`~genrekit.audio.segments.SegmentSettings`),
``spec.temperature``; :meth:`ModelSpec.from_dict` refuses a description that cannot be right
(a label that is not a string, a rate of 1e12 Hz, a temperature of 0, ...) before any tensor is
allocated, and :meth:`ModelSpec.to_dict` gives the JSON that :meth:`from_dict` reads back.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

from genrekit.audio.resample import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE  # the rates genrekit reads audio at
from genrekit.audio.segments import SegmentSettings
from genrekit.errors import GenrekitError, ModelError
from genrekit.utils import finite_json

FORMAT = "genrekit-model"


FORMAT_VERSION = 1




#: Longest accepted analysis window (seconds); a window is held in memory whole.
MAX_WINDOW_SECONDS = 600.0


#: How deep a model description's JSON may nest (the real ones nest 5 levels).
MAX_JSON_DEPTH = 64


MAX_LABELS = 10_000


#: The JSON fields of a model description, in the order they are written.
_KNOWN = ("format", "format_version", "genrekit_version", "created", "calibration", "name", "labels",
          "sample_rate", "segment", "feature", "architecture", "not_music", "metrics", "split",
          "data_fingerprint", "training")


@dataclass(frozen=True)
class ModelSpec:
    """Everything about a genre model that is not a tensor (one model file's JSON, typed).

    Parameters
    ----------
    labels : tuple of str
        Class names, unique; logit ``i`` is ``labels[i]``.
    sample_rate : int
        Audio is resampled to this rate (Hz) before it is cut into windows, from
        :data:`MIN_SAMPLE_RATE` to :data:`MAX_SAMPLE_RATE`.
    segment : SegmentSettings
        How audio is cut into windows (seconds).
    feature : dict or tuple of dict
        The feature front end's spec (:func:`genrekit.features.registry.build_feature`), or one
        spec per input of a multi-input (``parallel``) network.
    architecture : dict
        The network's spec (:func:`genrekit.models.registry.build_model`), with ``input_shape``.
    name : str
        Shown in outputs; default ``"unnamed"``.
    calibration : dict
        ``{"temperature": T, ...}``: probabilities are ``softmax(logits / T)``, ``T > 0``.
    not_music : dict or None
        The not-music detector block (:mod:`genrekit.inference.taggram`), if any.
    metrics, split, training : dict
        Training's records: scores, the split (track ids of each side), the recipe.
    data_fingerprint, created, genrekit_version : str or None
        Provenance; ``created`` and ``genrekit_version`` are filled in when the file is written.
    extra : dict
        Fields this version does not know, kept so that newer writers can add information.

    The dict fields are the file's JSON; treat them as read-only (derive a changed spec with
    :func:`dataclasses.replace`).

    Examples
    --------
    >>> from genrekit.models.spec import ModelSpec
    >>> spec = ModelSpec.from_dict({"labels": ["jazz", "rock"], "sample_rate": 16000,
    ...     "segment": {"window": 3.0}, "feature": {"name": "logmel"},
    ...     "architecture": {"name": "cnn2d", "input_shape": [96, 94]}})
    >>> spec.labels, spec.segment.hop, spec.temperature
    (('jazz', 'rock'), 3.0, 1.0)
    >>> ModelSpec.from_dict(spec.to_dict()) == spec
    True
    """

    labels: tuple[str, ...]
    sample_rate: int
    segment: SegmentSettings
    feature: dict | tuple[dict, ...]
    architecture: dict
    name: str = "unnamed"
    calibration: dict = field(default_factory=lambda: {"temperature": 1.0})
    not_music: dict | None = None
    metrics: dict = field(default_factory=dict)
    split: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    data_fingerprint: str | None = None
    created: str | None = None
    genrekit_version: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def temperature(self) -> float:
        """The calibration temperature ``T`` (``softmax(logits / T)``)."""
        return float(self.calibration.get("temperature", 1.0))

    @property
    def feature_specs(self) -> tuple[dict, ...]:
        """The feature spec of each network input (one for every model but ``parallel`` ones)."""
        return self.feature if isinstance(self.feature, tuple) else (self.feature,)

    @property
    def multi_input(self) -> bool:
        """Whether the network takes several inputs (a list of feature specs)."""
        return isinstance(self.feature, tuple)

    @property
    def input_shape(self):
        """The network's ``input_shape`` (shape of one example's features), or None."""
        return self.architecture.get("input_shape")

    @classmethod
    def from_dict(cls, data: dict, where: str = "model") -> "ModelSpec":
        """Check a model description (the JSON of a model file) and type it.

        Parameters
        ----------
        data : dict
            The parsed JSON; ``format`` fields are optional here.
        where : str
            What to name in error messages (the file).

        Returns
        -------
        ModelSpec

        Raises
        ------
        ModelError
            A field is missing, of the wrong type, or out of range: one line naming the field.
        """
        if not isinstance(data, dict):
            raise ModelError(f"{where}: a model description must be a JSON object")
        _check_depth(data, where)
        for key in ("labels", "sample_rate", "segment", "feature", "architecture"):
            if key not in data:
                raise ModelError(f"{where}: the model description lacks {key!r}")
        data = copy.deepcopy(data)
        version = data.get("format_version", FORMAT_VERSION)
        if not _is_int(version) or version > FORMAT_VERSION:
            raise ModelError(f"{where}: model format {version!r} is not one this genrekit reads "
                             f"(it reads up to {FORMAT_VERSION})")
        try:
            segment = SegmentSettings.from_spec(_object(data["segment"], "segment", where))
        except (GenrekitError, TypeError) as exc:
            raise ModelError(f"{where}: segment: {exc}") from None
        spec = cls(
            labels=_labels(data["labels"], where),
            sample_rate=_sample_rate(data["sample_rate"], where),
            segment=segment,
            feature=_feature(data["feature"], where),
            architecture=_named(data["architecture"], "architecture", where),
            name=_optional_str(data.get("name", "unnamed"), "name", where) or "unnamed",
            calibration=_calibration(data.get("calibration"), where),
            not_music=None if data.get("not_music") is None else _object(data["not_music"], "not_music", where),
            metrics=_object(data.get("metrics") or {}, "metrics", where),
            split=_object(data.get("split") or {}, "split", where),
            training=_object(data.get("training") or {}, "training", where),
            data_fingerprint=_optional_str(data.get("data_fingerprint"), "data_fingerprint", where),
            created=_optional_str(data.get("created"), "created", where),
            genrekit_version=_optional_str(data.get("genrekit_version"), "genrekit_version", where),
            extra={k: v for k, v in data.items() if k not in _KNOWN},
        )
        if spec.segment.window > MAX_WINDOW_SECONDS:
            raise ModelError(f"{where}: segment window {spec.segment.window:g} s is longer than "
                             f"{MAX_WINDOW_SECONDS:g} s")
        return spec

    def to_dict(self) -> dict:
        """The JSON object of a model file (``format`` fields included); :meth:`from_dict` reads it back.

        Returns
        -------
        dict
            JSON-able (non-finite floats become ``None``); empty optional records are left out.
        """
        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "genrekit_version": self.genrekit_version,
            "created": self.created,
            "calibration": self.calibration,
            "name": self.name,
            "labels": list(self.labels),
            "sample_rate": self.sample_rate,
            "segment": self.segment.to_spec(),
            "feature": list(self.feature) if self.multi_input else self.feature,
            "architecture": self.architecture,
            "not_music": self.not_music,
            "metrics": self.metrics,
            "split": self.split,
            "data_fingerprint": self.data_fingerprint,
            "training": self.training,
            **self.extra,
        }
        # optional records left out when empty, as files written before ModelSpec had them
        return finite_json({k: v for k, v in data.items() if k == "calibration" or v not in (None, {})})

    def decisive(self) -> dict:
        """The fields that decide a model's answers (part of its content digest).

        Returns
        -------
        dict
            ``labels``, ``calibration``, ``sample_rate``, ``segment``, ``feature``, ``architecture``
            and ``not_music`` (when present), as in :meth:`to_dict`.
        """
        data = self.to_dict()
        keys = ("labels", "calibration", "sample_rate", "segment", "feature", "architecture", "not_music")
        return {key: data[key] for key in keys if key in data}

    def to_json(self) -> str:
        """:meth:`to_dict` as strict JSON text (no NaN), indented.

        Returns
        -------
        str
            Ends with a newline.
        """
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"


def parse_model_json(text: str, where: str = "model") -> ModelSpec:
    """A :class:`ModelSpec` from a model file's JSON text.

    Parameters
    ----------
    text : str
        The content of ``NAME.json``.
    where : str, default "model"
        What to name in error messages (the file).

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelError
        Not JSON, nested too deeply, no genrekit ``format`` field, or a bad field.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{where}: not a genrekit model description ({exc})") from None
    except RecursionError:
        raise ModelError(f"{where}: not a genrekit model description (JSON nested too deeply)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{where}: not a genrekit model description (format field missing)")
    return ModelSpec.from_dict(data, where)


def _check_depth(data, where: str) -> None:
    """Refuse JSON nested deeper than :data:`MAX_JSON_DEPTH` (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ModelError(f"{where}: the model description nests deeper than {MAX_JSON_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _object(value, key: str, where: str) -> dict:
    if not isinstance(value, dict):
        raise ModelError(f"{where}: {key} must be a JSON object, not {type(value).__name__}")
    return value


def _named(value, key: str, where: str) -> dict:
    value = _object(value, key, where)
    if not isinstance(value.get("name"), str) or not value["name"]:
        raise ModelError(f"{where}: {key} must have a \"name\" (a string)")
    return value


def _optional_str(value, key: str, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ModelError(f"{where}: {key} must be a string, not {value!r}")
    return value


def _labels(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ModelError(f"{where}: labels must be a non-empty list of strings")
    if len(value) > MAX_LABELS:
        raise ModelError(f"{where}: {len(value)} labels (at most {MAX_LABELS})")
    for label in value:
        if not isinstance(label, str) or not label.strip():
            raise ModelError(f"{where}: label {label!r} is not a non-empty string")
    seen = set()
    for label in value:
        if label in seen:
            raise ModelError(f"{where}: label {label!r} appears twice")
        seen.add(label)
    return tuple(value)


def _sample_rate(value, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not _is_int(value) or not MIN_SAMPLE_RATE <= value <= MAX_SAMPLE_RATE:
        raise ModelError(f"{where}: sample_rate must be a whole number of Hz from {MIN_SAMPLE_RATE:,} "
                         f"to {MAX_SAMPLE_RATE:,}, not {value!r}")
    return value


def _feature(value, where: str) -> dict | tuple[dict, ...]:
    if isinstance(value, list):
        if not value:
            raise ModelError(f"{where}: feature must be a spec or a non-empty list of specs")
        return tuple(_named(item, "feature", where) for item in value)
    return _named(value, "feature", where)


def _calibration(value, where: str) -> dict:
    if value is None:
        return {"temperature": 1.0}
    value = _object(value, "calibration", where)
    temperature = value.get("temperature", 1.0)
    if not _is_number(temperature) or not math.isfinite(temperature) or temperature <= 0:
        raise ModelError(f"{where}: calibration temperature must be a finite number above 0, not {temperature!r}")
    return value
