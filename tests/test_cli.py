import subprocess
import sys

import pytest

from genrekit import __version__
from genrekit.apps.cli.main import main


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "genrekit", *args], capture_output=True, text=True, timeout=120
    )


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_unknown_option_is_usage_error():
    result = run_cli("--no-such-option")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_help_lists_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "data" in result.stdout
