"""musicnn in PyTorch: the pretrained music taggers of Pons & Serra (2019) and their embeddings.

``MSD_musicnn`` (Million Song Dataset tags) and ``MTT_musicnn`` (MagnaTagATune tags) take
3 s patches of log-compressed mel spectrogram, 187 frames x 96 bands at 16 kHz, and return 50
tag probabilities plus every named intermediate layer of the original TensorFlow graph
(``musicnn/models.py``): ``timbral``, ``temporal``, ``cnn1..3``, ``mean_pool``, ``max_pool``
and ``penultimate``. They match the original to float32 round-off.

The weights are not shipped: the first `load_musicnn` converts the TF1 checkpoint of the
installed ``musicnn`` 0.1.0 package (``pip install --no-deps musicnn==0.1.0``; TensorFlow is
never needed) into ``<cache>/musicnn/<name>.safetensors``. musicnn's weights and tag lists
are © Music Technology Group, Universitat Pompeu Fabra 2019, ISC licence: see
``genrekit/data/musicnn-LICENSE.md``.

Speed: `Musicnn.forward` is an inference-oriented formulation of the same network (filters
that the checkpoint left provably constant are skipped, max-pooling before the elementwise
layers, the long temporal convolutions as one Toeplitz matrix product); `Musicnn.reference`
is the literal port used to check it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ModelError, UsageError

__all__ = [
    "MODELS",
    "LAYERS",
    "Musicnn",
    "MusicnnVgg",
    "MusicnnFrontEnd",
    "MusicnnEmbedding",
    "load_musicnn",
    "convert_checkpoint",
    "logmel_patches",
    "musicnn_embeddings",
    "file_logmel",
    "tag_samples",
    "tag_file",
]

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
PATCH_FRAMES = 187  # 3 s: librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
HOP_1S_FRAMES = 61  # librosa.time_to_frames(1, ...), musicnn's "input_overlap=1"
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default (torch's is 1e-5)
INSTALL_HINT = "pip install --no-deps musicnn==0.1.0"

# Largest finite input: log10(10000 * x + 1) of the largest float16 (the front end rounds the
# mel power to float16, as musicnn does). Bounds how much a filter can ever vary.
LOGMEL_MAX = math.log10(10000.0 * 65504.0 + 1.0)  # 65504: largest float16
# Front-end filters whose output provably varies by less than this (absolute, any finite
# input) are computed as constants: about 1/100 of float32 round-off on these layers.
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


# ---------------------------------------------------------------------------------------------
# the network


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
    "valid"), and a dense layer from the flattened 2 x 1 x 128 map to the tag logits. Input
    ``(batch, 187, 96)`` log-mel patches (exactly 187 frames: the dense layer fixes the size).
    Outputs ``taggram``, ``logits`` and ``pool1``..``pool5`` (batch, time, band, 128), TF's NHWC.
    Not checked against TF outputs (no reference fixtures); `Musicnn` is.
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


# ---------------------------------------------------------------------------------------------
# weights: TF checkpoint -> safetensors cache

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


def _convert_to_cache(name: str, prefix: Path, digest: str, weights_path: Path, meta_path: Path) -> None:
    from safetensors.torch import save

    from .tfcheckpoint import read_checkpoint
    from .utils import atomic_write_bytes, atomic_write_text, info

    info(f"converting musicnn {name} weights once into {weights_path}")
    variables = read_checkpoint(prefix, _tf_variable_names(name))
    atomic_write_bytes(weights_path, save(convert_checkpoint(variables, name), metadata={"model": name}))
    meta = {
        "format": _CACHE_FORMAT,
        "model": name,
        "tags": list(MODELS[name]),
        "source": "musicnn 0.1.0 (ISC licence, Music Technology Group, Universitat Pompeu Fabra)",
        "source_sha256": digest,
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=1) + "\n")  # written last: the commit


def load_musicnn(
    name: str = "MSD_musicnn",
    *,
    tolerance: float = CONSTANT_FILTER_TOLERANCE,
    cache_dir: str | Path | None = None,
) -> Musicnn | MusicnnVgg:
    """A pretrained musicnn model in eval mode.

    The first call converts the checkpoint of the installed ``musicnn`` 0.1.0 package into
    ``<cache_dir>/<name>.safetensors`` (+ ``<name>.json`` holding the source checksum); later
    calls load that file, converting again only when the installed checkpoint changes. Once
    converted, the package may be uninstalled. Weights © MTG-UPF 2019, ISC licence (see
    ``genrekit/data/musicnn-LICENSE.md``).

    Parameters
    ----------
    name : str
        ``"MSD_musicnn"`` (Million Song Dataset tags) or ``"MTT_musicnn"`` (MagnaTagATune);
        ``"MSD_vgg"`` and ``"MTT_vgg"`` give the VGG baselines (`MusicnnVgg`).
    tolerance : float
        See `Musicnn` (not used by the VGG models); the default reproduces the original to
        float32 round-off.
    cache_dir : str or Path, optional
        Default ``genrekit.utils.cache_root() / "musicnn"``.

    Raises
    ------
    UsageError
        Unknown model name.
    ModelError
        musicnn is not installed and nothing is cached, or the cached weights are unusable.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .utils import cache_root

    if name not in MODELS:
        raise UsageError(f"unknown musicnn model {name!r}; expected one of {', '.join(MODELS)}")
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "musicnn"
    weights_path, meta_path = folder / f"{name}.safetensors", folder / f"{name}.json"
    prefix, meta = _checkpoint_prefix(name), _read_meta(meta_path)
    if prefix is not None:
        digest = _source_digest(prefix)
        if meta is None or meta.get("source_sha256") != digest or not weights_path.is_file():
            _convert_to_cache(name, prefix, digest, weights_path, meta_path)
            meta = _read_meta(meta_path)
    elif meta is None or not weights_path.is_file():
        raise ModelError(f"musicnn weights for {name} not found: install them with `{INSTALL_HINT}`")
    architecture = MusicnnVgg if name.endswith("_vgg") else Musicnn
    model = architecture(meta.get("tags", MODELS[name]), name, tolerance)
    try:
        model.load_state_dict(load_file(weights_path))
    except (RuntimeError, OSError, SafetensorError) as exc:
        detail = str(exc).splitlines()[0]
        raise ModelError(f"{weights_path}: unusable musicnn weights, delete the file ({detail})") from None
    return model.eval()


# ---------------------------------------------------------------------------------------------
# front end: audio -> log-mel patches


FLOAT16_MAX = 65504.0


class MusicnnFrontEnd(nn.Module):
    """musicnn's input: 16 kHz audio to log-compressed mel frames, one 3 s patch per row.

    Mel power spectrogram (``n_fft`` 512, hop 256, 96 Slaney mel bands, ``center=True``
    with zero padding, as librosa 0.11), rounded to float16 exactly as musicnn does, then
    ``log10(10000 x + 1)`` computed in float32 (musicnn computes it in float16, which
    overflows to inf, hence NaN tags, for loud music). Powers beyond the float16 range, which
    audio within [-1, 1] never reaches, are clipped to it instead of becoming inf.

    Parameters
    ----------
    center : bool
        Frames centred on multiples of the hop (musicnn); False is for callers that pad the
        signal themselves (`file_logmel`).

    Input ``(batch, samples)`` float32 at 16 kHz, at least 47 616 samples (2.976 s); output
    ``(batch, 187, 96)``: the first 187 frames of each row, as musicnn takes them. A genrekit
    3 s segment (48 000 samples) gives 188 frames with ``center=True``; the last is dropped.
    """

    sr = SAMPLE_RATE

    def __init__(self, center: bool = True):
        super().__init__()
        from .features import MelSpectrogram

        self.mel = MelSpectrogram(sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, center=center)

    def logmel(self, samples: torch.Tensor) -> torch.Tensor:
        """All frames: ``(..., samples)`` -> ``(..., frames, 96)`` log-compressed mel."""
        power = self.mel(samples).transpose(-1, -2).clamp(max=FLOAT16_MAX)
        return torch.log10(10000.0 * power.to(torch.float16).to(torch.float32) + 1.0)

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        if samples.ndim != 2:
            raise ValueError(f"expected audio of shape (batch, samples), got {tuple(samples.shape)}")
        if self.mel.frames(samples.shape[-1]) < PATCH_FRAMES:
            need = (PATCH_FRAMES - 1) * HOP_LENGTH
            raise ValueError(f"musicnn needs at least {need} samples at 16 kHz per row, got {samples.shape[-1]}")
        return self.logmel(samples)[:, :PATCH_FRAMES]


def logmel_patches(logmel: torch.Tensor, hop_frames: int = PATCH_FRAMES) -> tuple[torch.Tensor, np.ndarray]:
    """Cut a whole file's log-mel ``(frames, 96)`` into 187-frame patches like musicnn.

    Patches start every ``hop_frames`` frames while a whole patch fits (musicnn's
    ``batch_data``): 187 for no overlap, `HOP_1S_FRAMES` (61) for musicnn's 1 s
    ``input_overlap``. A file shorter than one patch is padded with zeros (silence), where
    musicnn fails.

    Returns
    -------
    patches : Tensor, shape (n_patches, 187, 96)
    starts : ndarray, shape (n_patches,)
        Patch start times in seconds.
    """
    if hop_frames < 1:
        raise UsageError(f"patch hop must be at least one frame, not {hop_frames}")
    if logmel.shape[0] < PATCH_FRAMES:
        logmel = F.pad(logmel, (0, 0, 0, PATCH_FRAMES - logmel.shape[0]))
    first_frames = np.arange(0, logmel.shape[0] - PATCH_FRAMES + 1, hop_frames)
    patches = logmel.unfold(0, PATCH_FRAMES, hop_frames).transpose(1, 2)
    return patches[: len(first_frames)], first_frames * HOP_LENGTH / SAMPLE_RATE


# ---------------------------------------------------------------------------------------------
# embeddings and tags


def _cached_model(name: str) -> Musicnn:
    if name not in _MODELS_IN_USE:
        _MODELS_IN_USE[name] = load_musicnn(name)
    return _MODELS_IN_USE[name]


_MODELS_IN_USE: dict[str, Musicnn] = {}


def _check_layer(layer: str, name: str) -> str:
    layers = ["taggram"] if name.endswith("_vgg") else list(LAYERS)
    if layer not in layers:
        raise UsageError(f"unknown {name} layer {layer!r}; expected one of {', '.join(layers)}")
    return layer


def musicnn_embeddings(
    inputs: np.ndarray | torch.Tensor,
    name: str = "MSD_musicnn",
    kind: str = "penultimate",
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """One musicnn vector per 3 s segment (or per log-mel patch).

    Parameters
    ----------
    inputs : array or Tensor
        Either audio segments ``(batch, samples)`` at 16 kHz (each row at least 2.976 s; its
        first 187 frames are used, see `MusicnnFrontEnd`) or log-mel patches
        ``(batch, 187, 96)``.
    name : str
        ``"MSD_musicnn"`` or ``"MTT_musicnn"`` (or a ``*_vgg`` model, taggram only).
    kind : str
        ``"taggram"`` (50 tag probabilities), ``"penultimate"`` (200), ``"mean_pool"`` or
        ``"max_pool"`` (753).
    batch_size : int
        Segments per forward pass.

    Returns
    -------
    ndarray, float32, shape (batch, dim)

    Notes
    -----
    The model is loaded once per process and kept (see `load_musicnn`).
    """
    _check_layer(kind, name)
    model = _cached_model(name)
    inputs = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
    is_patches = inputs.ndim == 3
    if inputs.ndim not in (2, 3):
        raise ValueError(f"expected (batch, samples) audio or (batch, 187, 96) patches, got {tuple(inputs.shape)}")
    frontend = None if is_patches else MusicnnFrontEnd()
    outputs = []
    with torch.inference_mode():
        for batch in inputs.split(batch_size):
            patches = batch if frontend is None else frontend(batch)
            outputs.append(model(patches)[kind])
    if not outputs:
        return np.zeros((0, LAYERS[kind]), np.float32)
    return torch.cat(outputs).numpy()


class MusicnnEmbedding(nn.Module):
    """A pretrained musicnn layer as a genrekit feature: 3 s of 16 kHz audio -> one vector.

    Input ``(batch, samples)`` float32 at 16 kHz (``sr`` attribute), at least 2.976 s; output
    ``(batch, dim)``: 50 for ``"taggram"``, 200 for ``"penultimate"``, 753 for ``"mean_pool"``
    and ``"max_pool"``. The network is frozen (no gradients, batch norms in eval mode), so it
    can sit in front of a trainable classifier. Spec: ``{"name": "musicnn", "model":
    "MSD_musicnn", "layer": "penultimate"}`` (see ``genrekit.features.build_feature``).
    """

    name = "musicnn"
    sr = SAMPLE_RATE

    def __init__(self, model: str = "MSD_musicnn", layer: str = "penultimate", tolerance: float = CONSTANT_FILTER_TOLERANCE):
        super().__init__()
        self.layer = _check_layer(layer, model)
        self.frontend = MusicnnFrontEnd()
        self.network = load_musicnn(model, tolerance=tolerance).requires_grad_(False)

    @property
    def dim(self) -> int:
        return LAYERS[self.layer]

    def config(self) -> dict:
        """Constructor arguments, JSON-able."""
        return {"model": self.network.name, "layer": self.layer, "tolerance": self.network.tolerance}

    def train(self, mode: bool = True) -> MusicnnEmbedding:
        super().train(mode)
        self.network.eval()  # frozen: batch norms keep their running statistics
        return self

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.network(self.frontend(samples))[self.layer]

    def extra_repr(self) -> str:
        return f"model={self.network.name!r}, layer={self.layer!r}"


def file_logmel(samples: np.ndarray | torch.Tensor, *, chunk_frames: int = 8192) -> torch.Tensor:
    """`MusicnnFrontEnd.logmel` of a whole mono signal, computed in chunks of frames.

    Same frames as one pass (``center=True`` with zero padding), but the STFT never holds
    more than ``chunk_frames`` frames, so hour-long files need memory for the samples and
    the ``(frames, 96)`` result only.
    """
    samples = torch.as_tensor(np.asarray(samples, dtype=np.float32))
    if samples.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got {tuple(samples.shape)}")
    frontend = MusicnnFrontEnd(center=False)
    padded = F.pad(samples, (N_FFT // 2, N_FFT // 2))  # the centring, once for the whole file
    n_frames = 1 + samples.shape[0] // HOP_LENGTH
    chunks = []
    for first in range(0, n_frames, chunk_frames):
        last = min(n_frames, first + chunk_frames)
        chunks.append(frontend.logmel(padded[first * HOP_LENGTH : (last - 1) * HOP_LENGTH + N_FFT]))
    return torch.cat(chunks)


def tag_samples(
    samples: np.ndarray | torch.Tensor,
    model: Musicnn,
    *,
    hop_frames: int = PATCH_FRAMES,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Tag probabilities of a whole 16 kHz mono signal, patch by patch (musicnn's taggram).

    Parameters
    ----------
    samples : array, shape (n,)
        Mono audio at 16 kHz.
    model : Musicnn
        From `load_musicnn`.
    hop_frames : int
        Frames between patch starts: 187 (no overlap) or 61 (musicnn's 1 s overlap).
    batch_size : int
        Patches per forward pass.

    Returns
    -------
    taggram : ndarray, float32, shape (n_patches, n_tags)
    starts : ndarray, shape (n_patches,)
        Patch start times in seconds; each patch spans 187 hops of 16 ms (2.992 s).
    """
    with torch.inference_mode():
        patches, starts = logmel_patches(file_logmel(samples), hop_frames)
        taggram = torch.cat([model(batch)["taggram"] for batch in patches.split(batch_size)])
    return taggram.numpy(), starts


def _top_tags(probabilities: np.ndarray, tags: Sequence[str], top: int) -> list[dict]:
    order = np.argsort(-probabilities, kind="stable")[:top]
    return [{"tag": tags[i], "probability": round(float(probabilities[i]), 4)} for i in order]


def tag_file(path: str | Path, name: str = "MSD_musicnn", *, top: int = 5, overlap: bool = False) -> dict:
    """Top musicnn tags of an audio file, overall and per 3 s patch, as JSON-able data.

    The file is decoded at 16 kHz mono (``genrekit.audio.load_audio``) and cut into
    187-frame patches every 3 s (every 1 s with ``overlap``); the whole-file ranking is the
    mean taggram over patches, as musicnn's ``top_tags``.

    Returns
    -------
    dict
        ``{"file", "model", "duration", "tags": [{"tag", "probability"}, ...],
        "segments": [{"start", "end", "tags": [...]}, ...]}``, times in seconds.
    """
    from .audio import load_audio

    if name not in MODELS:
        load_musicnn(name)  # raises the UsageError
    audio = load_audio(path, sr=SAMPLE_RATE)
    model = _cached_model(name)
    taggram, starts = tag_samples(audio.samples, model, hop_frames=HOP_1S_FRAMES if overlap else PATCH_FRAMES)
    patch_seconds = PATCH_FRAMES * HOP_LENGTH / SAMPLE_RATE
    segments = [
        {"start": round(float(start), 3), "end": round(float(min(start + patch_seconds, audio.duration)), 3),
         "tags": _top_tags(row, model.tags, top)}
        for start, row in zip(starts, taggram)
    ]
    return {
        "file": str(path),
        "model": name,
        "duration": round(float(audio.duration), 3),
        "tags": _top_tags(taggram.mean(axis=0), model.tags, top),
        "segments": segments,
    }


def _register_feature() -> None:
    from .features import FEATURES

    FEATURES.setdefault(MusicnnEmbedding.name, MusicnnEmbedding)


_register_feature()
