"""Entry-point wrapper: user mistakes end in one actionable line and a non-zero exit, not a stack dump."""

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


def run_main(main: Callable[[], None]) -> None:
    """Run a script's main(); report user errors on one line (exit 1)."""
    try:
        main()
    except USER_ERRORS as error:
        print(f'error: {user_message(error)}', file=sys.stderr)
        sys.exit(1)
