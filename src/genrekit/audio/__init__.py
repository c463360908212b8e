"""Audio in: decoding any file to mono float32 at a chosen rate (:mod:`.decode`), fixed-length
windows (:mod:`.segments`) and signal levels with the one silence threshold (:mod:`.levels`).

The lowest layer: imports nothing from genrekit but :mod:`genrekit.errors` and :mod:`genrekit.utils`.
"""
