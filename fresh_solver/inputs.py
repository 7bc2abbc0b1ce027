"""Reading a file the user named: its content, or an :class:`InputError` that names the file
and what is wrong with it (the CLI prints that and exits 2), never a traceback.

``label`` is how the message names the file, e.g. ``--params p.json``; the path by default.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from fresh_solver.errors import InputError


def read_text(path: str | Path, label: str | None = None) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise InputError(f"{label or path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise InputError(f"{label or path}: not a text file") from None


def read_json(path: str | Path, label: str | None = None) -> Any:
    text = read_text(path, label)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{label or path}: malformed JSON: {exc}") from None


def read_toml(path: str | Path, label: str | None = None) -> dict[str, Any]:
    text = read_text(path, label)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{label or path}: malformed TOML: {exc}") from None
