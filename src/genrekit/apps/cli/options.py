"""Options shared by several commands, each declared once: same flag, same help, same default.

A command takes one as a type, e.g. ``cache_dir: CacheDir = None``. Also here: how help pages
are drawn (:class:`HelpGroup`: value names instead of typer's ``<str>`` labels, plain usage
lines) and ``-q``/``--debug``, which every command accepts after its name too.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

#: Dataset kinds of :func:`genrekit.data.datasets.open_dataset` (``auto`` detects the others).
DATASET_KINDS = ("auto", "gtzan", "fma", "folder", "manifest")
#: Segments to track, as :data:`genrekit.inference.aggregate.AGGREGATIONS`.
AGGREGATIONS = ("mean", "vote")


def _device(value: str | None) -> str | None:
    if value is not None and value not in ("auto", "cpu", "cuda") and not _is_cuda_index(value):
        raise typer.BadParameter(f"{value!r}: give auto, cpu, cuda or cuda:N")
    return value


def _is_cuda_index(value: str) -> bool:
    return value.startswith("cuda:") and value[5:].isdigit()


def _feature(value: str | None) -> dict | None:
    """``--feature`` as a spec dict: a feature name or a JSON object; ``None`` when not given."""
    if value is None:
        return None
    from genrekit.data.embed import parse_feature

    return parse_feature(value)


CacheDir = Annotated[Optional[str], typer.Option(
    "--cache-dir", metavar="DIR",
    help="Feature cache folder (default: features/ in $GENREKIT_CACHE_DIR, else in ~/.cache/genrekit; "
         "a training config's cache_dir also counts).")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the feature cache.")]
DatasetKind = Annotated[Optional[Literal[DATASET_KINDS]], typer.Option(
    "--kind", help="Dataset kind (default: auto, which recognises GTZAN, FMA, a folder per label and a "
                   "CSV manifest).")]
Device = Annotated[Optional[str], typer.Option(
    "--device", metavar="[auto|cpu|cuda|cuda:N]", callback=_device,
    help="Where the networks run (default: auto, a CUDA GPU when torch sees one, else the CPU).")]
Model = Annotated[Optional[str], typer.Option(
    "--model", "-m", metavar="MODEL",
    help="A bundled model's name or a model file (NAME.json) (default: the bundled default model).")]
Feature = Annotated[Optional[str], typer.Option(
    "--feature", metavar="SPEC", callback=_feature,
    help='Feature: a name (logmel, mfcc, musicnn, ...) or a JSON spec such as '
         '\'{"name": "musicnn", "layer": "taggram"}\' (default: train takes a config file\'s, else '
         'mfcc with 20 coefficients; embed takes MSD_musicnn\'s penultimate layer, 200 values).')]
Aggregate = Annotated[Literal[AGGREGATIONS], typer.Option(
    "--aggregate", help="Segments to track: mean probability, or a majority vote.")]
MaxWindows = Annotated[int, typer.Option(
    "--max-windows", min=0, metavar="N",
    help="Window budget: classify at most N windows (3 s each) of a file, spread evenly over it, decoding "
         "only those where the format can seek; 0: every window (default: 10). --segments (the timeline) "
         "always has every window.")]


def resolve_device(device: str | None) -> str:
    """``--device`` for this machine: ``auto`` (or not given) becomes ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device not in (None, "auto"):
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# -- help pages and the options every command takes -------------------------------------------


def _set_verbosity(ctx, param, value: bool) -> None:
    from genrekit.apps.console import set_verbosity

    if value:
        set_verbosity(**{param.name: True})


Quiet = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress bars or status messages (warnings and errors still show).")]
Debug = Annotated[bool, typer.Option("--debug", help="Show debugging messages and full tracebacks for errors.")]


def _verbosity_options() -> list:
    """``-q`` and ``--debug`` as a command's own options (the group's ``-q``/``--debug`` reset both first)."""
    probe = typer.Typer(add_completion=False)

    @probe.command()
    def options(quiet: Quiet = False, debug: Debug = False) -> None:  # only its options are used
        pass

    params = [param for param in typer.main.get_command(probe).params if param.name in ("quiet", "debug")]
    for param in params:
        param.expose_value, param.is_eager, param.callback = False, True, _set_verbosity
    return params


class _PlainArgument(TyperArgument):
    """An argument shown as ``FILE``, ``[FILE]...``, ``MODEL`` in usage lines, without a type label."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar or self.name.upper()

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx):
        return None


class _PlainOption(TyperOption):
    """An option shown with its value's name (``--cache-dir DIR``, ``--aggregate [mean|vote]``); flags with none."""

    def display_type_rich(self, ctx):
        if self.is_flag or self.count:
            return None
        if self.metavar is not None:
            return self.metavar
        choices = self.type_descriptor.choices if self.type_descriptor.is_choice else None
        if choices:
            return "[" + "|".join(str(choice) for choice in choices) + "]"
        return {int: "N", float: "X"}.get(self.type_descriptor.annotation, "TEXT")


def _tidy(command) -> None:
    """Give ``command`` (and what it contains) the plain help style and the verbosity options."""
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _PlainArgument
        elif type(param) is TyperOption:
            param.__class__ = _PlainOption
    command.get_help_option = _plain_help_option(command.get_help_option)
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        names = {name for param in command.params for name in param.opts}
        for option in _verbosity_options():
            if not names & set(option.opts):
                option.__class__ = _PlainOption
                command.params.append(option)
    for sub in (subcommands or {}).values():
        _tidy(sub)


def _plain_help_option(get_help_option):
    def plain(ctx):
        option = get_help_option(ctx)
        if type(option) is TyperOption:
            option.__class__ = _PlainOption
        return option

    return plain


class HelpGroup(TyperGroup):
    """The ``genrekit`` group: plain help pages everywhere, ``-q``/``--debug`` on every command."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _tidy(self)
