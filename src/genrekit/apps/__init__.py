"""What users run: the command line (:mod:`.cli`), the web service (:mod:`.service`) and the
music-library tools (:mod:`.library`: SQLite results database, genre tags in files).

The top layer: nothing in genrekit imports it.
"""
