"""genrekit in beets: ``beet genrekit [QUERY]`` tells the genre of library items, offline.

Enable it with ``plugins: genrekit`` in beets' config (install ``genrekit[beets]``). Each
classified item gets the flexible attributes

- ``genrekit_genre``: the model's label (``hiphop``), ``""`` when the file is silent or not music;
- ``genrekit_confidence``: its calibrated confidence (0..1);
- ``genrekit_not_music``: whether the file is speech, noise or other sound that is not music;
- ``genrekit_styles`` (with ``--styles`` or ``styles: yes``): genre-like MSD tags, ``; ``-separated;
- ``genrekit_model``: the model (and window budget) that gave them, so a re-run skips the item
  unless ``-f`` is given or the model changed.

Configuration (``genrekit:`` in beets' config.yaml; defaults shown)::

    genrekit:
        auto: no             # classify items as they are imported
        styles: no           # also store styles (and write them as genres, with write_genre)
        model:               # a model file (NAME.json) or bundled model name; empty: the default
        max_windows:         # window budget per track (0: every window); empty: genrekit's default
        write_genre: no      # set beets' genre from the prediction, by the rules of `genrekit tag`:
        min_confidence: 0.5  #   only predictions at least this confident
        keep_existing: yes   #   leave items that have a genre alone (no: replace it)
        genre_map:           # your own genre names: a TOML file, or inline {hiphop: Hip Hop, disco: no}

Genres set with ``write_genre`` are written to the files as beets writes any field (on import
with ``import.write``, by ``beet genrekit`` when beets' ``import.write`` is on, or by ``beet write``).

This module uses genrekit's public API only: ``genrekit.load_model``, ``GenreModel.predict`` and
the genre rules exported by ``genrekit.apps.library``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from beets import ui, util
from beets.dbcore import types
from beets.plugins import BeetsPlugin

#: Flexible attributes this plugin sets.
GENRE, CONFIDENCE, NOT_MUSIC, STYLES, MODEL = (
    "genrekit_genre", "genrekit_confidence", "genrekit_not_music", "genrekit_styles", "genrekit_model",
)


class GenrekitPlugin(BeetsPlugin):
    item_types = {
        CONFIDENCE: types.Float(3),
        NOT_MUSIC: types.BOOLEAN,
        STYLES: types.SEMICOLON_SPACE_DSV,
    }

    def __init__(self):
        super().__init__()
        self.config.add({
            "auto": False, "styles": False, "model": None, "max_windows": None, "write_genre": False,
            "min_confidence": 0.5, "keep_existing": True, "genre_map": None,
        })
        self._model = None
        self._genre_map = None
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]

    def commands(self):
        command = ui.Subcommand("genrekit", help="tell the genre of items with genrekit")
        command.parser.add_option("-f", "--force", action="store_true", default=False,
                                  help="classify again items that already have a result")
        command.parser.add_option("--styles", action="store_true", default=None,
                                  help="also store the styles (genre-like MSD tags)")
        command.func = self.command
        return [command]

    def command(self, lib, opts, args):
        styles = opts.styles or self.config["styles"].get(bool)
        failed = self.classify_items(lib.items(args), force=opts.force, styles=styles, write=ui.should_write())
        if failed:
            raise ui.UserError(f"genrekit: {failed} item{'s' if failed > 1 else ''} could not be classified")

    def imported(self, session, task):
        # beets writes the fields set here (genre included) to the files after this stage,
        # when import.write is on
        self.classify_items(task.imported_items(), force=False, styles=self.config["styles"].get(bool),
                            write=False)

    def classify_items(self, items, *, force: bool, styles: bool, write: bool) -> int:
        """Classify (or reuse the stored result of) each item, store it; returns how many failed."""
        failed = 0
        for item in items:
            record = None if force else self._stored(item, styles)
            if record is None:
                record = self._predict(item, styles)
                if record is None:
                    failed += 1
                    continue
                _store_result(item, record, self._result_key(), styles)
            changed_genre = self.config["write_genre"].get(bool) and self._apply_genre_rules(item, record, styles)
            if write and changed_genre:
                item.try_write()
            item.store()
        return failed

    # -- genrekit, through its public API ---------------------------------------------------

    def model(self):
        """The configured genrekit model, loaded once; a bad model is a one-line beets error."""
        if self._model is None:
            import genrekit

            try:
                self._model = genrekit.load_model(self.config["model"].get() or None)
            except genrekit.GenrekitError as exc:
                raise ui.UserError(f"genrekit: {exc}") from None
        return self._model

    def genre_map(self):
        """The configured genre map (None: built-in names), checked against the model once."""
        source = self.config["genre_map"].get()
        if source is None:
            return None
        if self._genre_map is None:
            from genrekit import GenrekitError
            from genrekit.apps.library import load_genre_map

            if isinstance(source, Mapping):
                source = {str(key): value for key, value in source.items()}
            else:
                source = os.path.expanduser(self.config["genre_map"].as_filename())
            try:
                self._genre_map = load_genre_map(source, self.model())
            except GenrekitError as exc:
                raise ui.UserError(f"genrekit: {exc}") from None
        return self._genre_map

    def _budget(self) -> dict:
        max_windows = self.config["max_windows"].get()
        if max_windows is None:
            return {}  # genrekit's own default
        if not isinstance(max_windows, int) or isinstance(max_windows, bool) or max_windows < 0:
            raise ui.UserError(f"genrekit: max_windows must be a whole number of at least 0, not {max_windows!r}")
        return {"max_windows": max_windows}

    def _result_key(self) -> str:
        budget = self._budget()
        key = self.model().model_id
        return key + (f"?max_windows={budget['max_windows']}" if budget else "")

    def _predict(self, item, styles: bool) -> dict | None:
        from genrekit import GenrekitError

        path = os.fsdecode(item.path)
        try:
            prediction = self.model().predict(path, styles=styles, **self._budget())
        except GenrekitError as exc:
            self._log.error("{}", exc)
            return None
        record = prediction.to_dict()
        self._log.info("{}: {}", _describe(record), util.displayable_path(item.path))
        return record

    def _stored(self, item, styles: bool) -> dict | None:
        """The item's stored result as a prediction record, if this model (and budget) made it."""
        if item.get(MODEL) != self._result_key() or (styles and STYLES not in item):
            return None
        return {
            "genre": item.get(GENRE) or None,
            "confidence": item.get(CONFIDENCE),
            "not_music": bool(item.get(NOT_MUSIC)),
            "styles": [{"style": style} for style in item.get(STYLES) or []],
        }

    def _apply_genre_rules(self, item, record: dict, styles: bool) -> bool:
        """Set the item's genre by ``genrekit tag``'s rules; whether it changed."""
        from genrekit.apps.library import decide_genres

        new, action, reason = decide_genres(
            record, _genres_of(item), min_confidence=self.config["min_confidence"].as_number(),
            keep_existing=self.config["keep_existing"].get(bool), styles=styles, genre_map=self.genre_map(),
        )
        if action != "write":
            self._log.debug("genre left as it is ({}{}): {}", action, f", {reason}" if reason else "",
                            util.displayable_path(item.path))
            return False
        _set_genres(item, new)
        return True


def _store_result(item, record: dict, key: str, styles: bool) -> None:
    item[GENRE] = record["genre"] or ""
    item[CONFIDENCE] = float(record["confidence"])
    item[NOT_MUSIC] = bool(record.get("not_music"))
    if styles:
        item[STYLES] = [style["style"] for style in record.get("styles") or []]
    item[MODEL] = key


def _describe(record: dict) -> str:
    if record["genre"] is None:
        return "not music" if record.get("not_music") else "silent"
    return f"{record['genre']} ({record['confidence']:.2f})"


def _genres_of(item) -> list[str]:
    """The item's genres: beets 2.14 keeps a list (``genres``); older beets one text (``genre``)."""
    if "genres" in item._fields:
        return list(item.genres or [])
    return [item.genre] if item.genre else []


def _set_genres(item, genres: list[str]) -> None:
    if "genres" in item._fields:
        item.genres = list(genres)
    else:
        item.genre = genres[0]
