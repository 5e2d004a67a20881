"""The `neurotrans` command: help everywhere, errors as one line naming the fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from neurotrans.cli import build_parser, main

SUBCOMMANDS = [["simulate"], ["data"], ["data", "check"], ["data", "manifest"], ["train"], ["predict"],
               ["evaluate"], ["report"], ["demo"]]


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=lambda a: " ".join(a))
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([*argv, "--help"])
    assert exc.value.code == 0
    assert "usage: neurotrans" in capsys.readouterr().out


def test_console_script_help_is_fast_and_lazy():
    # `neurotrans --help` must not import torch or nilearn
    code = "import sys; from neurotrans.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_input_error_is_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "nope" / "manifest.tsv"
    assert main(["data", "check", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert str(missing) in err[0] and "Fix:" in err[0]
