"""Helpers of ``scripts/fit_not_music.py`` and ``benchmarks/bench_not_music.py``: synthetic music
(:mod:`.synthmusic`) and cached per-segment taggrams of the fitting and evaluation sets (:mod:`.sets`)."""
