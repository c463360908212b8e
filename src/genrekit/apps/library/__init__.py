"""A music library: the SQLite database of results and tag changes (:mod:`.db`), predictions
reused from it (:mod:`.results`) and genre tags written into audio files (:mod:`.genre_tags`).
"""
