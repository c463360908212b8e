"""The command line's shared options are declared once (same flag, same help, same default in
every command), ``-q``/``--debug`` work after the command name, and help pages read cleanly."""

import re

import pytest
import typer
from typer.testing import CliRunner

from genrekit.apps.cli.main import app

#: Options several commands take; each must mean the same everywhere.
SHARED = ("--cache-dir", "--kind", "--device", "--model", "--feature", "--aggregate", "--no-cache",
          "--quiet", "--debug")


def _commands(command=None, path=()):
    """(path, click command) of every command below the ``genrekit`` group, groups excluded."""
    command = command or typer.main.get_command(app)
    for name, sub in getattr(command, "commands", {}).items():
        if getattr(sub, "commands", None):
            yield from _commands(sub, path + (name,))
        else:
            yield path + (name,), sub


def _option(command, flag):
    return next((p for p in command.params if flag in p.opts), None)


@pytest.mark.parametrize("flag", SHARED)
def test_a_shared_option_has_one_help_and_one_default(flag):
    seen = {}
    for path, command in _commands():
        if path == ("tags",) and flag == "--model":
            continue  # tags names one of the four musicnn taggers, not a genre model
        option = _option(command, flag)
        if option is not None:
            seen.setdefault((option.help, repr(option.default), option.metavar), []).append(" ".join(path))
    assert len(seen) == 1, f"{flag} differs between commands: {seen}"


def test_cache_dir_kind_and_device_are_offered_where_they_were():
    offered = {flag: {" ".join(path) for path, command in _commands() if _option(command, flag)}
               for flag in ("--cache-dir", "--kind", "--device", "--model", "--feature")}
    assert offered["--cache-dir"] >= {"train", "evaluate", "experiment run", "data report", "cache info", "cache clear"}
    assert offered["--kind"] >= {"train", "evaluate", "experiment run", "data check", "data report"}
    assert offered["--device"] >= {"predict", "embed", "train", "evaluate", "experiment run"}
    assert offered["--model"] >= {"predict", "tag", "serve"}
    assert offered["--feature"] >= {"train", "embed"}


@pytest.mark.parametrize("text, spec", [("mfcc", {"name": "mfcc"}),
                                         ('{"name": "mfcc", "n_mfcc": 20}', {"name": "mfcc", "n_mfcc": 20})])
def test_train_and_embed_read_feature_the_same_way(text, spec):
    commands = dict(_commands())
    for name in ("train", "embed"):
        option = _option(commands[(name,)], "--feature")
        assert option.callback(None, option, text) == spec


def test_train_options_take_a_feature_name():
    from genrekit.training.config import config_from_options

    config = config_from_options(None, None, dataset="x", out="m", feature="mfcc")
    assert config.feature["name"] == "mfcc"


@pytest.mark.parametrize("args", [["predict", "x.wav", "--aggregate", "median"],
                                  ["evaluate", "m.json", "data", "--aggregate", "median"]])
def test_aggregate_is_checked_when_parsed(args):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "median" in result.output and "mean" in result.output and "vote" in result.output


def test_the_library_checks_aggregation_names_in_one_place():
    from genrekit.errors import UsageError
    from genrekit.inference.aggregate import AGGREGATIONS, check_aggregation
    from genrekit.apps.cli.options import AGGREGATIONS as CLI_AGGREGATIONS

    assert CLI_AGGREGATIONS == AGGREGATIONS
    with pytest.raises(UsageError, match="'mean' or 'vote'"):
        check_aggregation("median")


def test_dataset_kinds_match_the_readers():
    from genrekit.apps.cli.options import DATASET_KINDS
    from genrekit.data.datasets import KINDS

    assert DATASET_KINDS == ("auto", *KINDS)


@pytest.mark.parametrize("flag", ["-q", "--quiet", "--debug"])
def test_verbosity_flags_work_after_the_command(flag, tmp_path):
    from genrekit.apps.console import set_verbosity

    try:
        result = CliRunner().invoke(app, ["cache", "info", "--cache-dir", str(tmp_path), flag])
        assert result.exit_code == 0, result.output
    finally:
        set_verbosity(quiet=False, debug=False)


def test_device_is_checked_when_parsed():
    result = CliRunner().invoke(app, ["evaluate", "m.json", "data", "--device", "gpu"])
    assert result.exit_code == 2 and "cuda:N" in result.output


#: What typer's defaults put in help pages that a well-kept CLI's help does not show.
RAW_HELP = [r"<bool>", r"<str>", r"<int", r"<float", r"<list\[", r"\[[A-Z.]+\.\.\.\]\.\.\.", r"\[\[", r"\{\w",
            r"--db,--library-db", r"\b(a|an|the|with|of)  [a-z]", r"--install-completion"]


@pytest.mark.parametrize("path", [()] + [path for path, _ in _commands()] + [("data",), ("cache",), ("experiment",)],
                         ids=lambda path: " ".join(path) or "genrekit")
def test_help_reads_cleanly(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    found = [pattern for pattern in RAW_HELP if re.search(pattern, result.output)]
    assert not found, f"{found} in help of {' '.join(path)}:\n{result.output}"
    assert "{" not in usage and "[[" not in usage, usage


def test_tune_help_names_the_search_table():
    result = CliRunner().invoke(app, ["tune", "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert "with a [search] table" in result.output
