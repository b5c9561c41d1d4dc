"""Entry-point wrapper: user mistakes end in one actionable line and a non-zero exit, not a stack dump."""

import errno
import sys
from collections.abc import Callable

from util.errors import USER_ERRORS


def user_message(error: BaseException) -> str:
    """The one-line message of a user error, also when a DataLoader worker re-raised it with its traceback."""
    text = str(error).strip()
    last_line = text.splitlines()[-1] if text else type(error).__name__
    for prefix in (f'{type(error).__module__}.{type(error).__name__}: ', f'{type(error).__name__}: '):
        if last_line.startswith(prefix):
            return last_line[len(prefix) :]
    return last_line


# A write that fails for these reasons is the machine's state, not a bug: one line, like a user error.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def run_main(main: Callable[[], None]) -> None:
    """Run a script's main(); report user errors and full or read-only disks on one line (exit 1)."""
    try:
        main()
    except USER_ERRORS as error:
        print(f'error: {user_message(error)}', file=sys.stderr)
        sys.exit(1)
    except OSError as error:
        if error.errno not in DISK_ERRORS:
            raise
        print(
            f'error: {error.filename or "writing a file"}: {error.strerror}; free space or fix the permissions, then run '
            f'again (a checkpoint is only ever replaced as a whole, so --continue_train resumes from the last complete one)',
            file=sys.stderr,
        )
        sys.exit(1)
