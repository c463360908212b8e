"""The definition of a training run: :class:`TrainConfig` (from Python, TOML or ``genrekit train``
options), validated on construction; unknown settings are refused.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from genrekit.audio.segments import SegmentSettings
from genrekit.data.splits import SplitSettings
from genrekit.errors import UsageError
from genrekit.training.augment import AugmentSettings
from genrekit.training.checkpoints import read_checkpoint
from genrekit.utils import read_toml


@dataclass
class TrainConfig:
    """Everything that defines a training run; JSON- and TOML-able.

    Attributes
    ----------
    dataset : str
        Dataset folder or manifest, opened with :func:`genrekit.data.datasets.open_dataset`.
    out : str
        Model path ``NAME`` (``NAME.json`` and ``NAME.safetensors`` are written).
    name : str or None
        Model name recorded in the file; default: the stem of ``out``.
    dataset_kind : str
        ``"auto"``, ``"gtzan"``, ``"fma"``, ``"folder"`` or ``"manifest"``.
    sample_rate : int
        Audio is decoded at this rate (Hz).
    segment : dict
        ``{"window": seconds, "hop": seconds or None (= window), "last": "pad" | "drop"}``.
    feature : dict or list of dict
        Feature spec(s) for :func:`genrekit.features.registry.build_feature`; a list feeds a multi-input
        (``parallel``) network.
    architecture : dict
        Network spec for :func:`genrekit.models.build_model`.
    split : dict
        ``method`` (``"auto"``, ``"random"``, ``"group"``, ``"official"``, ``"gtzan-artist"``
        or ``"kfold"``), ``valid_size``, ``test_size``, and for ``kfold`` ``folds`` and ``fold``
        (the test fold; validation is drawn from the other folds).
    epochs, batch_size, learning_rate, weight_decay : training schedule (AdamW).
    patience : int
        Stop after this many epochs without a lower validation loss (0: never stop early).
    class_weights : bool
        Weight the loss by inverse class frequency of the training segments.
    augment : dict
        Waveform augmentation ``gain_db``, ``noise_snr_db``, ``shift`` (fraction of a window)
        and SpecAugment ``freq_masks``, ``freq_width``, ``time_masks``, ``time_width``
        (bins / frames); empty: none. See :class:`WaveAugment`, :class:`SpecAugment`.
    seed : int
        Seeds the split, the initialisation, batch order, dropout and augmentation.
    limit_per_label : int or None
        Use at most this many tracks per label (quick experiments).
    cache_dir : str or None
        Feature cache folder; ``None``: the default cache (``genrekit cache``); ``""``: no cache.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    checkpoint : bool
        Write ``NAME.ckpt.*`` after every epoch, for ``resume``.
    calibrate : bool
        Fit a softmax temperature on the validation segments.
    """

    dataset: str
    out: str
    name: str | None = None
    dataset_kind: str = "auto"
    sample_rate: int = 22050
    segment: dict = field(default_factory=lambda: {"window": 3.0, "hop": 3.0, "last": "pad"})
    feature: dict | list = field(default_factory=lambda: {"name": "mfcc", "n_mfcc": 20})
    architecture: dict = field(default_factory=lambda: {"name": "cnn2d"})
    split: dict = field(default_factory=lambda: {"method": "auto", "valid_size": 0.1, "test_size": 0.2})
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 5
    class_weights: bool = False
    augment: dict = field(default_factory=dict)
    seed: int = 0
    limit_per_label: int | None = None
    cache_dir: str | None = None
    device: str = "auto"
    checkpoint: bool = True
    calibrate: bool = True

    @classmethod
    def from_dict(cls, values: dict, where: str = "config") -> "TrainConfig":
        """Build from a dict, refusing unknown keys (a typo must not silently use a default).

        Parameters
        ----------
        values : dict
            Settings by attribute name; ``dataset`` and ``out`` are required.
        where : str, default "config"
            Where the values come from, for error messages.

        Returns
        -------
        TrainConfig
            Validated.

        Raises
        ------
        UsageError
            An unknown or missing setting, or an invalid value (see :meth:`validate`).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        missing = [name for name in ("dataset", "out") if not values.get(name)]
        if missing:
            raise UsageError(f"{where}: {missing[0]!r} is required")
        config = cls(**copy.deepcopy(values))
        config.validate(where)
        return config

    def to_dict(self) -> dict:
        """All settings as a dict (a deep copy), the inverse of :meth:`from_dict`.

        Returns
        -------
        dict
        """
        return copy.deepcopy(dataclasses.asdict(self))

    def validate(self, where: str = "config") -> None:
        """Check the settings together.

        Parameters
        ----------
        where : str, default "config"
            Where the values come from, for error messages.

        Raises
        ------
        UsageError
            A non-positive ``epochs``, ``batch_size``, ``sample_rate`` or ``learning_rate``; a bad
            ``segment``, ``augment`` or ``split``; a feature list without the ``parallel``
            architecture (or the reverse); an unknown ``device``.
        """
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "sample_rate": self.sample_rate}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"{where}: {name} must be a positive integer, not {value!r}")
        if not self.learning_rate > 0:
            raise UsageError(f"{where}: learning_rate must be positive, not {self.learning_rate!r}")
        try:
            SegmentSettings.from_spec(self.segment)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        for settings, spec in ((AugmentSettings, self.augment), (SplitSettings, self.split)):
            try:
                settings.from_spec(spec)
            except (UsageError, TypeError) as exc:
                raise UsageError(f"{where}: {exc}") from None
        if isinstance(self.feature, list) != (self.architecture.get("name") == "parallel"):
            raise UsageError(f"{where}: a list of features needs the 'parallel' architecture and back")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise UsageError(f"{where}: device must be auto, cpu or cuda, not {self.device!r}")

    @property
    def feature_specs(self) -> list[dict]:
        """The feature spec(s) as a list (one entry unless the network is ``parallel``)."""
        return list(self.feature) if isinstance(self.feature, list) else [self.feature]

    @property
    def model_name(self) -> str:
        """The model name to record: ``name``, or the stem of ``out``."""
        return self.name or Path(self.out).name


#: Settings naming what a run reads: a relative path in a config file is relative to the file.
CONFIG_INPUT_PATHS = ("dataset", "cache_dir")


def resolve_config_paths(values: dict, path: str | Path) -> dict:
    """``values`` read from the config file ``path``, its relative input paths made relative to the file.

    Inputs (``dataset``, ``cache_dir``) travel with the file; the output ``out`` stays as
    written: relative to the folder genrekit runs in unless absolute, so that a config written
    elsewhere (``genrekit tune``'s best config) never points a run's output into another tree.

    Parameters
    ----------
    values : dict
        Settings read from the file.
    path : str or Path
        The config file.

    Returns
    -------
    dict
        A copy with :data:`CONFIG_INPUT_PATHS` made relative to the file's folder.
    """
    values = dict(values)
    for key in CONFIG_INPUT_PATHS:
        if values.get(key) and not Path(values[key]).expanduser().is_absolute():
            values[key] = str(Path(path).parent / values[key])
    return values


def load_config(path: str | Path, **overrides) -> TrainConfig:
    """Read a TOML training config.

    Paths are taken as :func:`resolve_config_paths` says. A list of features is written as an
    array of tables (``[[feature]]``).

    Parameters
    ----------
    path : str or Path
        The TOML file.
    **overrides
        Settings that replace the file's (``None`` values are ignored).

    Returns
    -------
    TrainConfig

    Raises
    ------
    UsageError
        The file cannot be read or parsed, or a setting is unknown or invalid.
    """
    path = Path(path)
    values = resolve_config_paths(read_toml(path, "config file"), path)
    values.update({key: value for key, value in overrides.items() if value is not None})
    return TrainConfig.from_dict(values, where=str(path))


def config_from_options(config_path: str | None = None, resume: str | None = None, **options) -> TrainConfig:
    """A :class:`TrainConfig` from ``genrekit train`` options.

    Settings come from, in increasing priority: the defaults, the checkpoint being resumed (if
    no config file is given), the TOML file ``config_path``, the options. Options ``window``,
    ``hop`` go into ``segment``; ``split_method``, ``valid_size``, ``test_size``, ``folds``,
    ``fold`` into ``split``; ``architecture`` and ``augment`` may be JSON text, ``feature`` a
    name or JSON text (as ``--feature`` takes it, see :func:`genrekit.data.embed.parse_feature`).

    Parameters
    ----------
    config_path : str or None
        A TOML config file.
    resume : str or None
        A model path whose checkpoint is continued.
    **options
        ``TrainConfig`` settings and the options above; ``None`` means not given.

    Returns
    -------
    TrainConfig

    Raises
    ------
    UsageError
        Bad JSON in an option, or an unknown or invalid setting.
    """
    from genrekit.data.embed import parse_feature

    options = {key: value for key, value in options.items() if value is not None}
    if isinstance(options.get("feature"), str):
        options["feature"] = parse_feature(options["feature"])
    for key, flag in (("architecture", "--arch"), ("augment", "--augment")):
        if isinstance(options.get(key), str):
            options[key] = _parse_json_option(flag, options[key])
    segment_changes = {k: options.pop(k) for k in ("window", "hop") if k in options}
    split_changes = {("method" if k == "split_method" else k): options.pop(k)
                     for k in ("split_method", "valid_size", "test_size", "folds", "fold") if k in options}
    if config_path:
        base = load_config(config_path).to_dict()
    elif resume:
        base = read_checkpoint(resume)["spec"]["config"]
    else:
        base = {}
    values = {**base, **options}
    if segment_changes:
        values["segment"] = {**values.get("segment", TrainConfig.__dataclass_fields__["segment"].default_factory()),
                             **segment_changes}
    if split_changes:
        values["split"] = {**values.get("split", TrainConfig.__dataclass_fields__["split"].default_factory()),
                           **split_changes}
        if values["split"].get("method") != "kfold":
            values["split"].pop("folds", None), values["split"].pop("fold", None)
    return TrainConfig.from_dict(values, where=str(config_path or resume or "options"))


def _parse_json_option(flag: str, text: str):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag}: not valid JSON ({exc.msg}): {text}") from None
    if not isinstance(value, (dict, list)):
        raise UsageError(f"{flag}: expected a JSON object such as '{{\"name\": ...}}', got {text}")
    return value
