"""Training-time augmentation as ``nn.Module``s: waveform gain, noise and shift, and SpecAugment
masks on time-frequency features. Identity in eval mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from genrekit.errors import UsageError


class WaveAugment(nn.Module):
    """Random gain, additive white noise and circular time shift of waveform segments.

    Parameters
    ----------
    gain_db : float
        Gain drawn uniformly from ``[-gain_db, +gain_db]`` dB per segment (0: off).
    noise_snr_db : float or None
        White noise at a signal-to-noise ratio drawn from ``[noise_snr_db, noise_snr_db + 20]``
        dB per segment (None: off).
    shift : float
        Circular shift by up to this fraction of the segment, either way (0: off).

    Input and output ``(batch, samples)``; identity in eval mode. Draws from torch's global
    generator (seeded per epoch by the training loop).
    """

    OPTIONS = ("gain_db", "noise_snr_db", "shift")

    def __init__(self, gain_db: float = 0.0, noise_snr_db: float | None = None, shift: float = 0.0):
        super().__init__()
        self.gain_db, self.noise_snr_db, self.shift = float(gain_db), noise_snr_db, float(shift)

    @property
    def active(self) -> bool:
        """Whether any augmentation is switched on."""
        return bool(self.gain_db or self.noise_snr_db is not None or self.shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Augment a batch of waveform segments (in training mode only).

        Parameters
        ----------
        x : torch.Tensor
            float32 audio, shape ``(batch, samples)``.

        Returns
        -------
        torch.Tensor
            Same shape; ``x`` itself in eval mode.
        """
        if not self.training:
            return x
        batch, n = x.shape
        if self.shift:
            max_shift = int(self.shift * n)
            offsets = torch.randint(-max_shift, max_shift + 1, (batch, 1), device=x.device)
            index = (torch.arange(n, device=x.device) - offsets) % n
            x = torch.gather(x, 1, index)
        if self.gain_db:
            gain_db = (torch.rand(batch, 1, device=x.device) * 2 - 1) * self.gain_db
            x = x * 10 ** (gain_db / 20)
        if self.noise_snr_db is not None:
            snr_db = self.noise_snr_db + 20 * torch.rand(batch, 1, device=x.device)
            rms = x.square().mean(dim=1, keepdim=True).sqrt()
            x = x + torch.randn_like(x) * rms * 10 ** (-snr_db / 20)
        return x


class SpecAugment(nn.Module):
    """SpecAugment masks (Park et al., 2019) on time-frequency features ``(batch, bins, frames)``.

    Parameters
    ----------
    freq_masks, time_masks : int
        Number of masks along each axis (0: none).
    freq_width, time_width : int
        Largest mask width in bins / frames; each mask's width is drawn from ``[0, width]``.

    Masked cells are set to the segment's mean so that masking does not shift its level (the
    features are not normalised yet). Identity in eval mode and for inputs that are not 3-D.
    """

    OPTIONS = ("freq_masks", "freq_width", "time_masks", "time_width")

    def __init__(self, freq_masks: int = 0, freq_width: int = 8, time_masks: int = 0, time_width: int = 20):
        super().__init__()
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.time_masks, self.time_width = int(time_masks), int(time_width)

    @property
    def active(self) -> bool:
        """Whether any mask is switched on."""
        return bool(self.freq_masks or self.time_masks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mask random frequency bands and time spans of each item (in training mode only).

        Parameters
        ----------
        x : torch.Tensor
            Features, shape ``(batch, bins, frames)``; other shapes pass unchanged.

        Returns
        -------
        torch.Tensor
            Same shape; ``x`` itself in eval mode or when not 3-D.
        """
        if not self.training or x.ndim != 3:
            return x
        masked = torch.zeros_like(x, dtype=torch.bool)
        for axis, count, width in ((1, self.freq_masks, self.freq_width), (2, self.time_masks, self.time_width)):
            size = x.shape[axis]
            for _ in range(count):
                widths = torch.randint(0, min(width, size) + 1, (x.shape[0], 1), device=x.device)
                starts = (torch.rand(x.shape[0], 1, device=x.device) * (size - widths + 1)).long()
                positions = torch.arange(size, device=x.device)
                band = (positions >= starts) & (positions < starts + widths)  # (batch, size)
                masked |= band[:, :, None] if axis == 1 else band[:, None, :]
        fill = x.mean(dim=(1, 2), keepdim=True).expand_as(x)
        return torch.where(masked, fill, x)


@dataclass(frozen=True)
class AugmentSettings:
    """The typed form of a training config's ``augment`` spec (all off by default).

    Attributes
    ----------
    gain_db, noise_snr_db, shift
        Waveform augmentation, see :class:`WaveAugment` (dB, dB or None, fraction of a segment).
    freq_masks, freq_width, time_masks, time_width
        SpecAugment masks, see :class:`SpecAugment` (counts, and widths in bins and frames).
    """

    gain_db: float = 0.0
    noise_snr_db: float | None = None
    shift: float = 0.0
    freq_masks: int = 0
    freq_width: int = 8
    time_masks: int = 0
    time_width: int = 20

    @classmethod
    def from_spec(cls, spec: dict) -> "AugmentSettings":
        """Settings from an ``augment`` spec.

        Parameters
        ----------
        spec : dict
            Some of the attribute names and their values; the rest take their defaults.

        Returns
        -------
        AugmentSettings

        Raises
        ------
        UsageError
            An unknown key.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(spec) - known
        if unknown:
            raise UsageError(f"unknown augmentation {sorted(unknown)[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**spec)

    def to_spec(self) -> dict:
        """The complete spec; ``from_spec(s.to_spec()) == s``.

        Returns
        -------
        dict
            Every attribute and its value.
        """
        return asdict(self)


def build_augmentations(options: dict) -> tuple[WaveAugment, SpecAugment]:
    """The waveform and SpecAugment modules of an ``augment`` spec.

    Parameters
    ----------
    options : dict
        An ``augment`` spec (see `AugmentSettings`).

    Returns
    -------
    wave : WaveAugment
        For the audio windows, before the feature.
    spec : SpecAugment
        For the time-frequency features, after it.

    Raises
    ------
    UsageError
        An unknown key in ``options``.
    """
    settings = AugmentSettings.from_spec(options)
    wave = WaveAugment(**{k: getattr(settings, k) for k in WaveAugment.OPTIONS})
    spec = SpecAugment(**{k: getattr(settings, k) for k in SpecAugment.OPTIONS})
    return wave, spec
