"""The scripts shipped into pods parse as POSIX sh (pods run them with `sh`, which is dash on Debian).
What they do is tested against real servers in tests/integration/test_operator_scripts.py."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from router_operator.builders.scripts import NAMES, script


@pytest.mark.parametrize("name", NAMES)
def test_script_parses_as_posix_sh(name: str) -> None:
    shell = shutil.which("dash") or "sh"
    proc = subprocess.run([shell, "-n"], input=script(name), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert script(name).startswith("#!/bin/sh\n")
    assert "set -eu" in script(name)
