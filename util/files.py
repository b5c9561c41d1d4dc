"""Crash-safe files and folders: atomic writes, sweeping dead writers' temporaries, staged folders published and recovered, mkdirs."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call write(tmp_path), fsync it and atomically move it to path, so path is never left half-written."""
    tmp_path = f"{path}.tmp-{os.getpid()}"
    try:
        write(tmp_path)
        # O_RDWR without O_CREAT: fails loudly if the writer produced no file.
        fd = os.open(tmp_path, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_path, path)
    except BaseException:
        # BaseException too: a Ctrl-C during a checkpoint save must not leave debris.
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise
    if os.name == "posix":
        # The rename itself only survives a power loss once the directory is synced.
        dir_fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# atomic_write's temporary names: `<file>.tmp-<pid of the writer>`.
_TEMPORARY = re.compile(r"^.+\.tmp-(\d+)$")


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (a process of another user counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists but is not ours, or cannot be asked: never delete what may be in use
    return True


def sweep_temporaries(folder: str) -> list[str]:
    """Delete the `*.tmp-<pid>` files atomic_write left in `folder` when process <pid> died mid-write; return their names."""
    swept = []
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            match = _TEMPORARY.match(name)
            if match and not process_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(folder, name))
                    swept.append(name)
    return swept


def staging_path(final: str) -> str:
    """Where this process builds a folder that publish_folder later puts at `final`: `<final>.partial-<pid>`."""
    return f"{final}.partial-{os.getpid()}"


def publish_folder(staging: str, final: str) -> None:
    """Put the complete folder `staging` at `final`, replacing what was there (two renames, the old one deleted last).

    A kill between the renames leaves `<final>.old-<pid>` and the staging folder: recover_folder puts the old back.
    """
    old = f"{final}.old-{os.getpid()}"
    if os.path.exists(final):
        os.rename(final, old)
    os.rename(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def recover_folder(final: str) -> None:
    """Undo what dead processes left of building `final`: delete their staging folders, and put back an old
    folder a publish_folder was replacing when it died."""
    parent, name = os.path.split(os.path.abspath(final))
    leftovers = re.compile(rf"^{re.escape(name)}\.(partial|old)-(\d+)$")
    with contextlib.suppress(OSError):
        for entry in sorted(os.listdir(parent)):
            match = leftovers.match(entry)
            if not match or process_alive(int(match.group(2))):
                continue
            path = os.path.join(parent, entry)
            if match.group(1) == "old" and not os.path.exists(final):
                os.rename(path, final)
            else:
                shutil.rmtree(path, ignore_errors=True)


def mkdirs(paths: str | list[str]) -> None:
    """Create each directory (and parents) if it does not exist."""
    for path in [paths] if isinstance(paths, str) else paths:
        os.makedirs(path, exist_ok=True)
