"""Using a trained model: :class:`~.model.GenreModel` and ``load_model`` (:mod:`.model`), one file
or waveform (:mod:`.predict`), many files with decoding workers (:mod:`.batch`), segments to
track (:mod:`.aggregate`, shared with evaluation) and output writers (:mod:`.writers`).

Imports :mod:`genrekit.models` and below.
"""
