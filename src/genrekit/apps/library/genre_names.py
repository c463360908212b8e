"""The text written into genre tags for a model label or a style, and genre maps that replace it.

A genre map (``genrekit tag --genre-map FILE.toml``, the beets plugin's ``genre_map``) maps model
labels, and styles, to the tag text of one's choice, or to ``false`` to never write them::

    hiphop = "Hip Hop"
    classical = "Classical Music"
    disco = false
    "hard rock" = "Hard Rock"

Labels the map does not name keep their built-in text (:data:`GENRE_NAMES`, :data:`STYLE_NAMES`).
"""

from __future__ import annotations

import os
from typing import Mapping

from genrekit.errors import UsageError
from genrekit.utils import printable, read_toml

#: Conventional tag spellings of GTZAN's lower-case labels; other labels are used as they are
#: (with a capital first letter when all lower-case).
GENRE_NAMES = {
    "blues": "Blues", "classical": "Classical", "country": "Country", "disco": "Disco",
    "hiphop": "Hip-Hop", "jazz": "Jazz", "metal": "Metal", "pop": "Pop", "reggae": "Reggae",
    "rock": "Rock",
}


#: Tag spellings of the MSD style tags (``genrekit predict --styles``) that are not written as
#: they are or with a capital first letter.
STYLE_NAMES = {
    "rnb": "R&B", "Hip-Hop": "Hip-Hop", "House": "House", "Progressive rock": "Progressive Rock",
    "alternative rock": "Alternative Rock", "classic rock": "Classic Rock", "indie rock": "Indie Rock",
    "hard rock": "Hard Rock", "heavy metal": "Heavy Metal", "indie pop": "Indie Pop",
    "easy listening": "Easy Listening",
}


#: A validated genre map: label or style -> tag text, or None for "never write it".
GenreMap = Mapping[str, "str | None"]


def _tag_value(name: str, names: Mapping[str, str], genre_map: GenreMap | None) -> str | None:
    """A ``genre_map`` entry wins over the built-in text in ``names``; None means never write it.
    Other names are capitalised (a name already in mixed case, such as ``"House"``, is kept)."""
    if genre_map is not None and name in genre_map:
        return genre_map[name]
    if name in names:
        return names[name]
    return name[:1].upper() + name[1:] if name.islower() else name


def genre_tag_value(label: str, genre_map: GenreMap | None = None) -> str | None:
    """The tag text for a model label: ``"hiphop"`` -> ``"Hip-Hop"``, ``"jazz"`` -> ``"Jazz"``.

    A ``genre_map`` entry wins over the built-in text; None means the map says never to write it.
    """
    return _tag_value(label, GENRE_NAMES, genre_map)


def style_tag_value(style: str, genre_map: GenreMap | None = None) -> str | None:
    """The tag text for a style: ``"rnb"`` -> ``"R&B"``, ``"hard rock"`` -> ``"Hard Rock"``, ``"folk"`` -> ``"Folk"``.

    A ``genre_map`` entry wins over the built-in text; None means the map says never to write it.
    """
    return _tag_value(style, STYLE_NAMES, genre_map)


def load_genre_map(source: str | os.PathLike | Mapping, model) -> dict[str, str | None]:
    """A genre map read from a TOML file (or given as a mapping), checked against a model.

    Parameters
    ----------
    source : path or mapping
        ``FILE.toml`` whose top-level keys are labels or styles and whose values are the tag
        text (a non-empty string) or ``false``; or the same as a mapping (the beets plugin's
        ``genre_map`` configured inline).
    model : genrekit.GenreModel
        Keys must be among its labels, or its styles when it gives them (the default model:
        ``genrekit.inference.taggram.STYLE_TAGS``).

    Returns
    -------
    dict
        Label or style -> tag text, or None where the map says ``false``.

    Raises
    ------
    UsageError
        One line naming the file and every problem: a missing file, invalid TOML, a key that is
        neither a label nor a style of the model, a value that is not a non-empty text or false.
    """
    from genrekit.inference.taggram import STYLE_TAGS

    labels = [str(label) for label in model.labels]
    styles = list(STYLE_TAGS) if model.gives_taggram else []
    where = "genre map" if isinstance(source, Mapping) else str(source)
    table = dict(source) if isinstance(source, Mapping) else read_toml(source, "genre map")
    known = {*labels, *styles}
    problems = []
    unknown = [key for key in table if key not in known]
    if unknown:
        problems.append(f"unknown label{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                        f"(the model's labels: {', '.join(sorted(set(labels)))})")
    for key, value in table.items():
        if key in known and not _is_tag_text(value):
            problems.append(f"{key!r} must be a text or false, not {_describe(value)}")
    if problems:
        raise UsageError(printable(f"{where}: " + "; ".join(problems)))
    return {key: (None if value is False else value.strip()) for key, value in table.items()}


def _is_tag_text(value) -> bool:
    return value is False or (isinstance(value, str) and bool(value.strip()))


def _describe(value) -> str:
    if value is True:
        return "true"
    if isinstance(value, str):
        return "an empty text"
    if isinstance(value, dict):
        return "a table"
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (list, tuple)) else "a list"
