"""The feature registry: names in specs such as ``{"name": "mfcc", "n_mfcc": 20}`` -> modules.

A feature is an ``nn.Module`` mapping audio windows ``(batch, samples)`` to features, with a
``name`` and a ``config()`` of its constructor arguments; its spec is ``{"name", **config()}``.
"""

from __future__ import annotations

from torch import nn

from genrekit.errors import UsageError
from genrekit.features.musicnn.embedding import MusicnnEmbedding
from genrekit.features.musicnn.sequence import MusicnnSequence
from genrekit.features.spectral import MFCC, LogMel, MelSpectrogram
from genrekit.features.summary import SummaryFeatures
from genrekit.features.waveform import Waveform

#: Every feature genrekit can compute: spec name -> module class (constructor arguments are the
#: rest of the spec). One literal mapping: nothing registers itself on import.
FEATURES: dict[str, type[nn.Module]] = {
    "melspectrogram": MelSpectrogram,
    "logmel": LogMel,
    "mfcc": MFCC,
    "summary": SummaryFeatures,
    "waveform": Waveform,
    "musicnn": MusicnnEmbedding,
    "musicnn-sequence": MusicnnSequence,
}


def feature_spec(module: nn.Module) -> dict:
    """JSON-able description of a feature module: ``{"name": ..., **constructor arguments}``.

    ``build_feature(feature_spec(m))`` rebuilds an equivalent module.

    Parameters
    ----------
    module : nn.Module
        An instance of a class in `FEATURES`.

    Returns
    -------
    dict
        The spec.

    Raises
    ------
    TypeError
        ``module`` is not a genrekit feature module.
    """
    if type(module) not in FEATURES.values():
        raise TypeError(f"not a genrekit feature module: {type(module).__name__}")
    return {"name": module.name, **module.config()}


def build_feature(spec: dict) -> nn.Module:
    """Feature module from a spec such as ``{"name": "mfcc", "n_mfcc": 20}``.

    Parameters
    ----------
    spec : dict
        ``name`` (a key of `FEATURES`) and constructor arguments; missing ones take their defaults.

    Returns
    -------
    nn.Module
        Maps audio windows ``(batch, samples)`` at the module's ``sr`` to features
        (``(batch, bands, frames)`` for spectrograms, ``(batch, dim)`` for embeddings).

    Raises
    ------
    UsageError
        Unknown feature name or constructor argument.

    Examples
    --------
    >>> import torch
    >>> from genrekit.features.registry import build_feature
    >>> mfcc = build_feature({"name": "mfcc", "n_mfcc": 13})
    >>> mfcc(torch.zeros(1, 3 * 22050)).shape  # one 3 s window: 13 coefficients x 130 frames
    torch.Size([1, 13, 130])
    """
    options = dict(spec)
    name = options.pop("name", None)
    if name not in FEATURES:
        known = sorted(FEATURES)
        raise UsageError(f"unknown feature {name!r}; expected one of {', '.join(known)}")
    cls = FEATURES[name]
    try:
        return cls(**options)
    except TypeError as error:  # an unexpected keyword in the spec
        raise UsageError(f"bad {name} feature spec {spec}: {error}") from None


def resolve_feature(spec: dict, sample_rate: int) -> tuple[dict, nn.Module]:
    """The complete spec of a feature (every default written out) and its module.

    A front end whose spec gives no ``sr`` gets ``sample_rate``, so that its mel bands are where
    the audio's frequencies are; a front end with a fixed rate (musicnn: 16 kHz) must match it.
    Writing out the defaults keeps the model file valid if a default changes later, and lets
    ``{"name": "mfcc"}`` and ``{"name": "mfcc", "n_mfcc": 20}`` share cache entries.

    Parameters
    ----------
    spec : dict
        A feature spec, as `build_feature` takes.
    sample_rate : int
        Rate of the audio the feature will see, in Hz.

    Returns
    -------
    spec : dict
        The spec with every constructor argument written out.
    module : nn.Module
        The feature module.

    Raises
    ------
    UsageError
        Unknown feature or argument, or a fixed-rate feature at another ``sample_rate``.
    """
    from genrekit.features.registry import build_feature, feature_spec

    module = build_feature(spec)
    arguments = module.config() if hasattr(module, "config") else {}
    rate = arguments.get("sr", getattr(module, "sr", None))
    if "sr" not in spec and "sr" in arguments and rate != sample_rate:
        spec = {**spec, "sr": sample_rate}
        module, rate = build_feature(spec), sample_rate
    if rate is not None and int(rate) != int(sample_rate):
        raise UsageError(f"feature {spec.get('name')!r} works at {rate} Hz but sample_rate is {sample_rate}: "
                         f"set sample_rate = {rate}")
    try:
        return feature_spec(module), module
    except TypeError:  # a module feature_spec does not know (summary features): keep the spec as given
        return dict(spec), module
