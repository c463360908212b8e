"""Write the musicnn weights that ship inside genrekit: the default model's backbone
(MSD_musicnn), converted from the TensorFlow checkpoint of the ``musicnn`` 0.1.0 package
(ISC licence, notice in ``src/genrekit/assets/musicnn-LICENSE.md``) to safetensors.

tests/test_musicnn.py checks that the shipped file holds exactly what a fresh conversion gives.

Usage, from the repository root, with musicnn installed (``pip install --no-deps musicnn==0.1.0``)::

    .venv/bin/python scripts/bundle_musicnn_weights.py [--out src/genrekit/assets/musicnn]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safetensors.torch import save

from genrekit.features.musicnn.weights import convert_installed
from genrekit.utils import atomic_write_bytes

BUNDLED = ["MSD_musicnn"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("src/genrekit/assets/musicnn"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in BUNDLED:
        state, metadata = convert_installed(name)
        path = args.out / f"{name}.safetensors"
        atomic_write_bytes(path, save(state, metadata=metadata))
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, source sha256 {metadata['source_sha256'][:12]}")


if __name__ == "__main__":
    main()
