"""A music library: the SQLite database of results and tag changes (:mod:`.db`), predictions
reused from it (:mod:`.results`), genre tags written into audio files (:mod:`.genre_tags`, each
format's way in :mod:`.tag_formats`) and the text written for a label (:mod:`.genre_names`).

The names below are the public API for tools that tag libraries their own way (the beets
plugin, ``beetsplug.genrekit``): the genre rules of ``genrekit tag`` and its genre maps.
"""

__all__ = ["decide_genres", "genre_tag_value", "load_genre_map", "style_tag_value"]


def __getattr__(name):
    # imported when asked for: ``import genrekit.apps.library.db`` stays free of mutagen
    if name == "decide_genres":
        from genrekit.apps.library.genre_tags import decide_genres

        return decide_genres
    if name in ("genre_tag_value", "load_genre_map", "style_tag_value"):
        from genrekit.apps.library import genre_names

        return getattr(genre_names, name)
    raise AttributeError(f"module 'genrekit.apps.library' has no attribute {name!r}")
