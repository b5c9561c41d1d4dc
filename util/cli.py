"""Command lines: help sections every layer adds flags to, and the entry-point wrapper that ends user mistakes in one
actionable line and a non-zero exit, not a stack dump."""

import argparse
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


def help_group(parser: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    """The parser's help section `title`, created on first use (options/ and each method add flags to the same sections)."""
    groups = {group.title: group for group in parser._action_groups}
    return groups.get(title) or parser.add_argument_group(title)


# A write that fails for these reasons is the machine's state, not a bug: one line, like a user error.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def run_main(main: Callable[[], object]) -> None:
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
