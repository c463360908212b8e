"""A decoding function for Ray worker-death tests: it kills its worker process on files named
``poison*``, as a decoder crashing on a damaged file (or the out-of-memory killer) would, and
decodes every other file as genrekit does."""

import os

from genrekit.inference.batch import decode_segments


def decode_or_die(path, **options):
    if os.path.basename(path).startswith("poison"):
        os._exit(70)
    return decode_segments(path, **options)
