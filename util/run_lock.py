"""One training run per experiment folder: an exclusive OS lock (flock) on `<folder>/train.lock`, held
for the life of the process. The kernel drops it when the process ends, however it ends (SIGKILL
included), so there is never a stale lock to clean up. Readers (test.py, the feature scripts, the
editor) never take it: they read committed checkpoint sets only.

POSIX only: where fcntl is missing (Windows) the lock is skipped with a printed note.
"""

import os
import socket
from typing import IO

from util.errors import TrainingError, describe

try:
    import fcntl
except ImportError:  # Windows: out of scope, the run goes on unguarded
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = 'train.lock'


def acquire_run_lock(folder: str) -> IO | None:
    """Lock `folder` for this process (the returned open file holds the lock; keep it until the run ends).

    Raises TrainingError naming the PID and host of the run that holds it. None where fcntl is missing.
    """
    path = os.path.join(folder, LOCK_NAME)
    if fcntl is None:
        print(f"no fcntl on this platform: {path} is not locked, so nothing stops a second train.py on this folder")
        return None
    try:
        handle = open(path, 'a+')  # never truncated before the lock is ours: the holder's line stays readable
    except OSError as error:
        raise TrainingError(f"cannot open {path} ({describe(error)}); fix the folder's permissions") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or 'a process that has not written its id yet'
        handle.close()
        raise TrainingError(
            f"{folder} is being trained by another run ({holder}); wait for it to end or stop it, or train under another --name"
        ) from None
    except OSError as error:  # a file system without flock support
        handle.close()
        raise TrainingError(f"cannot lock {path} ({describe(error)}); put --checkpoints_dir on a local file system") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f'PID {os.getpid()} on host {socket.gethostname()}\n')
    handle.flush()
    return handle
