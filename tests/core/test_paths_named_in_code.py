"""A docstring or comment that names a file (`apikeys/views/api_keys.py`) is where a reader
goes next: a file moved or split without its pointers sends them nowhere, so every path
named in the project's own code, templates and static files must exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATH = re.compile(r"\b[a-z_]+/[a-z_/]+\.(?:py|html|js|css)\b")


def named_paths() -> list[tuple[str, str]]:
    tracked = subprocess.run(
        ["git", "ls-files", "*.py", "*.html", "*.js", "*.css"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [
        (name, path)
        for name in tracked
        if not name.startswith("tests/")
        for path in PATH.findall((ROOT / name).read_text())
    ]


def test_every_path_named_in_the_code_exists():
    assert named_paths()
    missing = [
        (name, path)
        for name, path in named_paths()
        if not any((ROOT / base / path).exists() for base in ("", "templates", "static"))
    ]
    assert missing == []
