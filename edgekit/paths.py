"""Where edgekit finds its data files and keeps its cache: one resolver for each.

Model cards (`models/*.toml`) and target profiles (`targets/*.toml`) ship inside the package as
`edgekit/data/models` and `edgekit/data/targets` (setup.py copies the top-level folders there when a wheel is built).
In a source checkout the top-level `models/` and `targets/` folders are read directly: they are the user-editable
copies. Folders named in `$EDGEKIT_MODELS` / `$EDGEKIT_TARGETS` (os.pathsep-separated) come first, so a user's file
overrides a shipped file of the same name and adds to the rest.

Standard library only: every layer may import this module.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_KINDS = {"models": "EDGEKIT_MODELS", "targets": "EDGEKIT_TARGETS"}


def cache_root() -> Path:
    """edgekit's cache folder: $EDGEKIT_CACHE, else $XDG_CACHE_HOME/edgekit, else ~/.cache/edgekit."""
    if os.environ.get("EDGEKIT_CACHE"):
        return Path(os.environ["EDGEKIT_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "edgekit"


def shipped_dir(kind: str) -> Path:
    """The package-data copy of `kind` ("models" or "targets") inside an installed wheel."""
    return PACKAGE_DIR / "data" / kind


def checkout_dir(kind: str) -> Path | None:
    """The top-level `models/` or `targets/` folder of the source checkout this package runs from; None when the
    package is installed (no pyproject.toml beside it)."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / kind).is_dir():
        return root / kind
    return None


def builtin_dir(kind: str) -> Path:
    """Where the built-in `kind` files are: the checkout's folder, else the shipped package data."""
    return checkout_dir(kind) or shipped_dir(kind)


def data_dirs(kind: str, directory: Path | None = None) -> list[Path]:
    """The folders searched for `kind` files, highest precedence first: `directory` (an explicit choice), the
    folders in $EDGEKIT_MODELS / $EDGEKIT_TARGETS, the checkout's folder, the shipped package data."""
    dirs = [Path(directory)] if directory is not None else []
    env = os.environ.get(DATA_KINDS[kind])
    if env:
        dirs += [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    for d in (checkout_dir(kind), shipped_dir(kind)):
        if d is not None and d.is_dir() and d not in dirs:
            dirs.append(d)
    return dirs


def data_files(kind: str, directory: Path | None = None) -> dict[str, Path]:
    """name -> file for every `kind` TOML file in data_dirs(); the first folder that has a name wins."""
    found: dict[str, Path] = {}
    for d in data_dirs(kind, directory):
        if d.is_dir():
            for path in sorted(d.glob("*.toml")):
                found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def find_data_file(kind: str, name: str, directory: Path | None = None) -> Path | None:
    """The file for `name` in data_dirs() (the first folder that has it), or None."""
    for d in data_dirs(kind, directory):
        path = d / f"{name}.toml"
        if path.is_file():
            return path
    return None
