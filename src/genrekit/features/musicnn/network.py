"""The musicnn networks (Pons & Serra, 2019) in PyTorch: ``Musicnn`` (timbral and temporal
front end, mid-end, back end) and ``MusicnnVgg``, their output tags, and the constants of
the original graph.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genrekit.errors import UsageError

N_MELS = 96


PATCH_FRAMES = 187  # 3 s: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1


HOP_1S_FRAMES = 61  # librosa.time_to_frames(1, ...), musicnn's "input_overlap=1"


BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default (torch's is 1e-5)


# Front-end filters whose output provably varies by less than this (absolute, any finite
# input) are computed as constants: about 1/100 of float32 round-off on these layers.
# Largest finite input: log10(10000 * x + 1) of the largest float16 (the front end rounds the
# mel power to float16, as musicnn does). Bounds how much a filter can ever vary.
LOGMEL_MAX = math.log10(10000.0 * 65504.0 + 1.0)  # 65504: largest float16
CONSTANT_FILTER_TOLERANCE = 1e-7


MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)


MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
)


#: Pretrained models: name -> tag names in output order. The ``*_vgg`` ones are musicnn's
#: VGG-like baselines (`MusicnnVgg`), less accurate (MTT ROC-AUC 0.877 against 0.903).
MODELS = {"MSD_musicnn": MSD_TAGS, "MTT_musicnn": MTT_TAGS, "MSD_vgg": MSD_TAGS, "MTT_vgg": MTT_TAGS}


#: Pooled layers usable as one vector per patch: name -> size (``*_vgg`` models: taggram only).
LAYERS = {"taggram": 50, "penultimate": 200, "mean_pool": 753, "max_pool": 753}


TIMBRAL_WIDTHS = (38, 67)  # int(0.4 * 96), int(0.7 * 96) mel bands, 7 frames long


TEMPORAL_LENGTHS = (128, 64, 32)  # frames, one mel band wide


TIMBRAL_FILTERS = 204  # int(1.6 * 128)


TEMPORAL_FILTERS = 51  # int(1.6 * 32)


MIDEND_FILTERS = 64


BACKEND_UNITS = 200


FRONTEND_CHANNELS = len(TIMBRAL_WIDTHS) * TIMBRAL_FILTERS + len(TEMPORAL_LENGTHS) * TEMPORAL_FILTERS


POOLED_CHANNELS = FRONTEND_CHANNELS + 3 * MIDEND_FILTERS  # 561 + 192 = 753


TOEPLITZ_BLOCK = 16  # output frames per row of the temporal-convolution matrix product


CHUNK_BYTES = 8 << 20  # largest front-end intermediate computed at once (see _in_chunks)


def _conv_bn(conv: nn.Module, channels: int) -> nn.ModuleDict:
    return nn.ModuleDict({"conv": conv, "bn": nn.BatchNorm1d(channels, eps=BN_EPSILON)})


def _bn_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference batch norm as ``x * scale + shift``."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class Musicnn(nn.Module):
    """The musicnn tagger (``build_musicnn`` in musicnn's ``models.py``), inference only.

    Front end: a batch norm on the input, two timbral convolutions (7 frames x 38 or 67 mel
    bands, 204 filters each) and three temporal ones (128, 64, 32 frames x 1 band, 51 filters
    each, TF ``"same"`` padding), each followed by ReLU, batch norm and a max over frequency:
    561 channels per frame. Mid end: three 7-frame convolutions to 64 channels with residual
    connections. Back end: max and mean over time of all 753 channels, batch norm, dense 200
    + ReLU + batch norm (``penultimate``), dense to the tag logits. Batch norms always use
    their running statistics (the module is a frozen feature extractor).

    Parameters
    ----------
    tags : sequence of str
        Output tag names, in order.
    name : str
        Model name, e.g. ``"MSD_musicnn"``.
    tolerance : float
        `forward` computes a front-end filter as a constant when its output provably stays
        within ``tolerance`` (absolute) of that constant for every patch `MusicnnFrontEnd`
        can produce (log-mel values in [0, `LOGMEL_MAX`] = [0, 8.82]). The default
        1e-7 is below float32 round-off (the result equals `reference` to ~1e-6 relative);
        1e-2 is a cheaper approximation (MTT_musicnn: about 40 % less work, taggram within
        ~1e-5, pooled features within ~4e-3 on music). Not a parameter of `reference`.

    Input ``(batch, 187, 96)`` float32 log-mel patches (frames x bands, see
    `MusicnnFrontEnd`); any number of frames from 1 works, the models were trained on 187.
    """

    def __init__(
        self, tags: Sequence[str], name: str = "musicnn", tolerance: float = CONSTANT_FILTER_TOLERANCE
    ):
        super().__init__()
        if not tolerance >= 0:
            raise UsageError(f"musicnn tolerance must be >= 0, not {tolerance}")
        self.name, self.tags, self.tolerance = name, tuple(tags), float(tolerance)
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPSILON)
        self.timbral = nn.ModuleList(
            _conv_bn(nn.Conv2d(1, TIMBRAL_FILTERS, (7, width)), TIMBRAL_FILTERS)
            for width in TIMBRAL_WIDTHS
        )
        self.temporal = nn.ModuleList(
            _conv_bn(nn.Conv2d(1, TEMPORAL_FILTERS, (length, 1)), TEMPORAL_FILTERS)
            for length in TEMPORAL_LENGTHS
        )
        widths = (FRONTEND_CHANNELS, MIDEND_FILTERS, MIDEND_FILTERS)
        self.midend = nn.ModuleList(
            _conv_bn(nn.Conv1d(width, MIDEND_FILTERS, 7, padding=3), MIDEND_FILTERS)
            for width in widths
        )
        self.pool_bn = nn.BatchNorm1d(2 * POOLED_CHANNELS, eps=BN_EPSILON)
        self.dense = nn.Linear(2 * POOLED_CHANNELS, BACKEND_UNITS)
        self.dense_bn = nn.BatchNorm1d(BACKEND_UNITS, eps=BN_EPSILON)
        self.output = nn.Linear(BACKEND_UNITS, len(self.tags))
        self.eval()

    def extra_repr(self) -> str:
        """Name, tag count and tolerance, as shown by ``repr(module)``.

        Returns
        -------
        str
            ``"name='MSD_musicnn', tags=50, tolerance=1e-07"``.
        """
        return f"name={self.name!r}, tags={len(self.tags)}, tolerance={self.tolerance:g}"

    # -- the fast formulation --------------------------------------------------------------

    def forward(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        """Tag probabilities and named layers of a batch of log-mel patches.

        Parameters
        ----------
        patches : Tensor, shape (batch, frames, 96)
            Log-compressed mel patches, 187 frames for the trained 3 s.

        Returns
        -------
        dict of Tensor
            ``taggram`` (batch, n_tags) sigmoid probabilities, ``logits`` (batch, n_tags),
            ``penultimate`` (batch, 200), ``mean_pool`` and ``max_pool`` (batch, 753),
            ``timbral`` (batch, frames, 408), ``temporal`` (batch, frames, 153) and
            ``cnn1``, ``cnn2``, ``cnn3`` (batch, frames, 64). The per-frame layers are views.
        """
        patches = _check_patches(patches)
        scale, shift = _bn_affine(self.input_bn)
        x = patches * scale + shift  # (batch, frames, bands)
        reach = _input_bound(scale, shift) / self.tolerance
        timbral = [_timbral_fast(x, block, reach) for block in self.timbral]
        temporal = [_temporal_fast(x, block, reach) for block in self.temporal]
        return self._midend_backend(torch.cat(timbral + temporal, dim=1))

    def _midend_backend(self, front: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mid end and back end on the front-end output ``(batch, 561, frames)``."""
        layers, previous = [], None
        for block in self.midend:
            scale, shift = _bn_affine(block["bn"])
            out = F.relu(block["conv"](front if previous is None else previous))
            out = out * scale[:, None] + shift[:, None]
            previous = out if previous is None else out + previous
            layers.append(previous)
        features = torch.cat([front, *layers], dim=1)
        max_pool, mean_pool = features.amax(dim=2), features.mean(dim=2)
        # TF flattens (channels, [max, mean]): the two pools interleave
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        logits = self.output(penultimate)
        n_timbral = len(TIMBRAL_WIDTHS) * TIMBRAL_FILTERS
        return {
            "taggram": torch.sigmoid(logits),
            "logits": logits,
            "penultimate": penultimate,
            "mean_pool": mean_pool,
            "max_pool": max_pool,
            "timbral": front[:, :n_timbral].transpose(1, 2),
            "temporal": front[:, n_timbral:].transpose(1, 2),
            **{f"cnn{i}": layer.transpose(1, 2) for i, layer in enumerate(layers, start=1)},
        }

    # -- the literal port --------------------------------------------------------------------

    def reference(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        """Same outputs as `forward`, computed layer by layer exactly as the TF graph does.

        Plain ``conv2d`` on NCHW tensors (H = time, W = mel band) with TF's padding, ReLU,
        batch norm on every position, then the max over frequency. Slower; kept as the
        readable specification that `forward` is tested against.

        Parameters
        ----------
        patches : torch.Tensor
            Log-compressed mel patches, float32, shape ``(batch, frames, 96)``.

        Returns
        -------
        dict of torch.Tensor
            The layers `forward` returns, same names and shapes.
        """
        patches = _check_patches(patches)
        x = self.input_bn(patches.unsqueeze(1))  # (batch, 1, frames, bands)
        front = []
        for block in self.timbral:
            out = block["conv"](F.pad(x, (0, 0, 3, 3)))  # 'valid' after padding time by 3
            front.append(_bn_2d(block["bn"], F.relu(out)).amax(dim=3))
        for block in self.temporal:
            length = block["conv"].kernel_size[0]
            before = (length - 1) // 2  # TF "same": the odd padding sample goes at the end
            out = block["conv"](F.pad(x, (0, 0, before, length - 1 - before)))
            front.append(_bn_2d(block["bn"], F.relu(out)).amax(dim=3))
        return self._midend_backend(torch.cat(front, dim=1))


def _check_patches(patches: torch.Tensor) -> torch.Tensor:
    if patches.ndim != 3 or patches.shape[-1] != N_MELS or patches.shape[1] < 1:
        raise ValueError(f"expected log-mel patches (batch, frames, {N_MELS}), got {tuple(patches.shape)}")
    return patches.to(torch.float32)


def _bn_2d(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    scale, shift = _bn_affine(bn)
    return x * scale[:, None, None] + shift[:, None, None]


def _input_bound(scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Largest |value| the normalised input takes for any finite patch (padding is 0)."""
    ends = torch.stack([shift, scale * LOGMEL_MAX + shift]).abs()
    return ends.max()


class _LiveFilters(NamedTuple):
    """The filters of a front-end block that `Musicnn.forward` computes, ready to use."""

    index: torch.Tensor  # (live,) positions among the block's filters
    weight: torch.Tensor  # their kernels, negated where the batch-norm scale is negative
    bias: torch.Tensor  # their biases, negated likewise
    sign: torch.Tensor  # -1 where negated, else 1
    scale: torch.Tensor  # their batch norm as x * scale + shift
    shift: torch.Tensor
    constant: torch.Tensor  # (filters,) output of every filter for a zero kernel


def _live_filters(block: nn.ModuleDict, reach: torch.Tensor) -> _LiveFilters:
    """The filters of a front-end block whose output can vary by more than the tolerance.

    A filter's output after ReLU and batch norm is ``scale * relu(w . x + b) + shift``; it
    stays within ``|scale| * |w|_1 * max|x|`` of ``scale * relu(b) + shift`` for every input
    (``reach`` is ``max|x| / tolerance``, ``x`` the normalised log-mel in [0, `LOGMEL_MAX`]). musicnn's training drove many batch-norm scales to
    ~1e-12 (181 of the 204 7x38 filters of MSD_musicnn), so those filters are constants in
    disguise and are not computed. Negating the kernels of negative-scale filters lets one max
    over frequency serve both signs (see `_finish_block`).
    """
    conv = block["conv"]
    scale, shift = _bn_affine(block["bn"])
    live = torch.nonzero(scale.abs() * conv.weight.flatten(1).abs().sum(dim=1) * reach > 1.0).flatten()
    sign = torch.where(scale[live] < 0, -1.0, 1.0)
    weight = conv.weight[live] * sign.view(-1, *([1] * (conv.weight.ndim - 1)))
    constant = scale * F.relu(conv.bias) + shift
    return _LiveFilters(live, weight, conv.bias[live] * sign, sign, scale[live], shift[live], constant)


def _finish_block(pooled: torch.Tensor, filters: _LiveFilters, n_frames: int) -> torch.Tensor:
    """From the signed per-frame max of the live filters to the block output ``(batch, C, T)``.

    ``max_f bn(relu(z_f + b))`` equals ``bn(relu(max_f z_f + b))`` when the batch-norm scale
    is positive, and uses ``min_f`` when it is negative; the kernels of the latter were
    negated, so ``sign * max`` of their outputs is that minimum.
    """
    out = filters.constant[None, :, None].expand(pooled.shape[0], -1, n_frames).clone()
    selected = (pooled + filters.bias[:, None]) * filters.sign[:, None]
    out[:, filters.index] = F.relu(selected) * filters.scale[:, None] + filters.shift[:, None]
    return out


def _in_chunks(function, x: torch.Tensor, bytes_per_item: int) -> torch.Tensor:
    """``function(x)`` on slices of the batch whose intermediate results stay cache-sized.

    A batch of 10 patches makes 55 MB of 7x38 convolution output for MTT_musicnn, which runs
    30 % slower than the same work in slices that fit the last-level cache.
    """
    size = max(1, CHUNK_BYTES // max(1, bytes_per_item))
    if x.shape[0] <= size:
        return function(x)
    return torch.cat([function(part) for part in x.split(size)])


def _timbral_fast(x: torch.Tensor, block: nn.ModuleDict, reach: torch.Tensor) -> torch.Tensor:
    """Timbral block on normalised patches ``x`` (batch, frames, bands) -> (batch, 204, frames)."""
    filters = _live_filters(block, reach)
    if not len(filters.index):
        return _finish_block(x.new_zeros(x.shape[0], 0, x.shape[1]), filters, x.shape[1])
    width = N_MELS - block["conv"].kernel_size[1] + 1

    def conv_max(part: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(part, (0, 0, 3, 3)).unsqueeze(1), filters.weight).amax(dim=3)

    pooled = _in_chunks(conv_max, x, 4 * len(filters.index) * x.shape[1] * width)
    return _finish_block(pooled, filters, x.shape[1])


def _temporal_fast(x: torch.Tensor, block: nn.ModuleDict, reach: torch.Tensor) -> torch.Tensor:
    """Temporal block (k x 1 kernel, TF "same") -> (batch, 51, frames), as one matrix product.

    Each mel band is a separate 1-D signal. Cutting the output into blocks of ``s`` frames,
    block ``q`` depends only on the input window ``[q s, q s + s + k - 1)``, and maps to it
    through a banded (Toeplitz) matrix built from the kernel: a well-shaped GEMM of
    ``(batch * bands * blocks, s + k - 1) @ (s + k - 1, s * filters)`` instead of a
    one-input-channel convolution that libraries run poorly.
    """
    filters = _live_filters(block, reach)
    weight = filters.weight[:, 0, :, 0].t()  # (k, live)
    n_frames, n_bands = x.shape[1], x.shape[2]
    length, n_live, block_size = weight.shape[0], weight.shape[1], TOEPLITZ_BLOCK
    n_blocks = -(-n_frames // block_size)
    before = (length - 1) // 2  # TF "same": the odd padding sample goes at the end
    after = n_blocks * block_size + length - 1 - n_frames - before
    toeplitz = torch.stack(
        [F.pad(weight, (0, 0, shift, block_size - 1 - shift)) for shift in range(block_size)], dim=1
    ).reshape(block_size + length - 1, block_size * n_live)

    def conv_max(part: torch.Tensor) -> torch.Tensor:
        bands = F.pad(part.transpose(1, 2), (before, after))  # (batch, bands, padded frames)
        windows = bands.unfold(2, block_size + length - 1, block_size)
        out = windows.reshape(-1, block_size + length - 1) @ toeplitz
        out = out.view(part.shape[0], n_bands, n_blocks * block_size, n_live)[:, :, :n_frames]
        return out.amax(dim=1).transpose(1, 2)  # (batch, live, frames)

    pooled = _in_chunks(conv_max, x, 4 * n_bands * n_blocks * block_size * n_live)
    return _finish_block(pooled, filters, n_frames)


class MusicnnVgg(nn.Module):
    """musicnn's VGG-like baseline (``vgg`` in musicnn's ``models.py``), inference only.

    Batch norm on the input, then five blocks of 3x3 convolution (128 filters, "same"
    padding), ReLU, batch norm and max-pooling (4x1 stride 2x2, three times 2x2, then 4x4,
    "valid"), and a dense layer from the flattened 2 x 1 x 128 map to the tag logits.
    Not checked against TF outputs (no reference fixtures); `Musicnn` is.

    Parameters
    ----------
    tags : sequence of str
        Output tag names, in order.
    name : str, default "musicnn_vgg"
        Model name.
    tolerance : None
        Unused (kept for the same constructor as `Musicnn`).

    Notes
    -----
    Input ``(batch, 187, 96)`` log-mel patches (exactly 187 frames: the dense layer fixes the size).
    """

    POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))
    FILTERS = 128

    def __init__(self, tags: Sequence[str], name: str = "musicnn_vgg", tolerance: float | None = None):
        super().__init__()
        self.name, self.tags, self.tolerance = name, tuple(tags), tolerance
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPSILON)
        self.blocks = nn.ModuleList(
            _conv_bn(nn.Conv2d(1 if i == 0 else self.FILTERS, self.FILTERS, 3, padding=1), self.FILTERS)
            for i in range(len(self.POOLS))
        )
        self.output = nn.Linear(2 * self.FILTERS, len(self.tags))
        self.eval()

    def forward(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        """Tag probabilities and the pooled maps of a batch of log-mel patches.

        Parameters
        ----------
        patches : torch.Tensor
            Log-compressed mel patches, float32, shape ``(batch, 187, 96)``.

        Returns
        -------
        dict of torch.Tensor
            ``taggram`` (batch, n_tags) sigmoid probabilities, ``logits`` (batch, n_tags) and
            ``pool1`` .. ``pool5`` (batch, time, band, 128), TF's NHWC.

        Raises
        ------
        ValueError
            The patches do not have exactly 187 frames.
        """
        patches = _check_patches(patches)
        if patches.shape[1] != PATCH_FRAMES:
            raise ValueError(f"the VGG models take exactly {PATCH_FRAMES} frames, got {patches.shape[1]}")
        x = self.input_bn(patches.unsqueeze(1))
        pools = {}
        for index, (block, (size, stride)) in enumerate(zip(self.blocks, self.POOLS), start=1):
            x = F.max_pool2d(_bn_2d(block["bn"], F.relu(block["conv"](x))), size, stride)
            pools[f"pool{index}"] = x.permute(0, 2, 3, 1)
        logits = self.output(pools["pool5"].flatten(1))  # TF flattens NHWC
        return {"taggram": torch.sigmoid(logits), "logits": logits, **pools}

    reference = forward


FLOAT16_MAX = 65504.0
