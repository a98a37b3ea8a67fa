"""Files, safely: writing into an output folder, and the sha256 that identifies an artifact.

Every file edgekit puts in an output folder is first written under a temporary name in that same folder and then
renamed over its final name (os.replace). So a symlink planted at the final name is replaced, never written through;
a crash never leaves a half-written file under the final name; and a failure (a full disk, Ctrl-C) removes the
temporary file instead of leaving it behind. Final files get the mode a plain open() would give them (umask).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgekit.errors import EdgekitError


def default_mode(directory: bool = False) -> int:
    """The permission bits a newly created file (0o666) or folder (0o777) gets under the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def refuse_special(path: Path, what: str = "output") -> None:
    """Refuse to replace a device, FIFO or socket: renaming a file over `/dev/null` as root would swap the device
    for a regular file. Regular files, folders and links (a link itself is replaced, not followed) are fine."""
    import stat

    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        raise EdgekitError(f"{what} {path} is a device, pipe or socket, not a file",
                           "give a path to a regular file (to discard output, redirect stdout instead)")


def write_text(path: Path, text: str) -> Path:
    """Atomically (re)write `path` with `text` (UTF-8): temporary file beside it, fsync, then os.replace."""
    refuse_special(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, default_mode())  # mkstemp creates 0600; a manifest is as readable as the artifacts
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def staging(directory: Path) -> Iterator[Path]:
    """A private temporary folder inside `directory` (the same file system, so moving out of it is a rename),
    removed with everything still in it when the block ends, whether it succeeded, failed or was interrupted."""
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=".edgekit-staging-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install(src: Path, dest: Path) -> None:
    """Move `src` (a file, or a folder such as an .mlpackage) to `dest` by renaming it, never through a link.

    A file is renamed over `dest` in one step. A folder cannot be renamed over a file, a link or a non-empty folder,
    so whatever is at `dest` is first renamed aside into `src`'s (staging) folder, which removes it later."""
    refuse_special(dest)
    replacing_dir = dest.is_dir() and not dest.is_symlink()
    if (src.is_dir() or replacing_dir) and (dest.is_symlink() or dest.exists()):
        os.replace(dest, src.with_name(f".replaced-{dest.name}"))  # renames the link itself, not its target
    os.replace(src, dest)


def output_path(out_dir: Path, name: str) -> Path:
    """`out_dir / name`, refused unless `name` is a plain entry directly inside `out_dir`: a model name with '/',
    '..' or an absolute path would otherwise put files anywhere. Links are not followed (the last component may be a
    planted link, which install() replaces)."""
    root = out_dir.resolve()
    candidate = Path(os.path.normpath(root / name))
    if candidate.parent != root or not candidate.is_relative_to(root) or candidate.name in ("", ".", ".."):
        raise EdgekitError(f"output file name {name!r} would be written outside the output folder {out_dir}",
                           "give the model a plain name (letters, digits, '-', '_', '.'), without '/' or '..'")
    return out_dir / candidate.name

def file_sha256(path: Path) -> str:
    """sha256 of a file, or of a directory's files in sorted order (a .mlpackage is a directory)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
