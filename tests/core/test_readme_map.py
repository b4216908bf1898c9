"""The README's map of the code ("Where things are") is how a new engineer finds where a key
is created, where a presented token is checked and where each call is logged: every file it
names must come with the function or class to open it at, and each of those must be
defined in that file, so a rename or a move that leaves the map behind fails here."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NEARBY = 80  # characters either side of a file's name in which its function is named


def map_paragraph() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Where things are") :]
    return section.split("\n\n")[1]


def defined_names(path: Path) -> set[str]:
    """Top-level functions and classes of `path`, and their methods as `Class.method`."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    names.add(f"{node.name}.{item.name}")
    return names


def named_code(text: str) -> list[str]:
    """The identifiers the text quotes, `name()` and `Class.method()` read as `name`."""
    quoted = re.findall(r"`@?([A-Za-z_][\w.]*(?:\(\))?)`", text)
    return [name.removesuffix("()") for name in quoted]


def test_every_file_on_the_map_exists():
    paragraph = map_paragraph()
    files = re.findall(r"`([\w/]+\.py)`", paragraph)
    assert files
    assert [f for f in files if not (ROOT / f).is_file()] == []


def test_every_file_on_the_map_comes_with_a_function_defined_in_it():
    paragraph = map_paragraph()
    unanchored = []
    for match in re.finditer(r"`([\w/]+\.py)`", paragraph):
        nearby = paragraph[max(0, match.start() - NEARBY) : match.end() + NEARBY]
        defined = defined_names(ROOT / match.group(1))
        if not any(name in defined for name in named_code(nearby)):
            unanchored.append(match.group(1))
    assert unanchored == []


def test_every_function_on_the_map_is_defined_where_the_map_says():
    paragraph = map_paragraph()
    files = re.findall(r"`([\w/]+\.py)`", paragraph)
    defined = set().union(*(defined_names(ROOT / f) for f in files))
    quoted = [name for name in named_code(paragraph) if not name.endswith(".py")]
    commands = {path.stem for path in ROOT.glob("*/management/commands/*.py")}
    assert [n for n in quoted if n not in defined and n not in commands] == []


def layer_of_each_app() -> dict[str, int]:
    """Each app's layer in import-linter's contract, 0 at the top (pyproject.toml)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return {app.strip(): n for n, layer in enumerate(layers) for app in layer.split("|")}


def test_the_apps_on_the_map_are_listed_from_the_top_layer_down():
    """The map says each app imports only the apps below it in its table: an app listed
    above one that imports it tells a reader the import runs the other way."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| folder | holds |") :].split("\n\n")[0]
    layer = layer_of_each_app()
    apps = [a for a in re.findall(r"^\| `(\w+)/` \|", table, flags=re.MULTILINE) if a in layer]
    assert sorted(layer) == sorted(apps)
    assert apps == sorted(apps, key=layer.__getitem__)


def test_the_map_says_where_a_key_is_made_checked_logged_revoked_limited_and_found_leaked():
    """What a new engineer asks first, each answered in the map itself: a section further
    down is not found in the first minute."""
    paragraph = map_paragraph()
    asked = ["created", "checked", "logged", "revoked", "rate limit", "leak"]
    assert [a for a in asked if f"**{a}" not in paragraph] == []
