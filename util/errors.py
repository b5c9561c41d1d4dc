"""The project's user-facing error classes, in one place every layer can import.

Entry points (util/cli.py) turn each of them into a one-line message and exit status 1.
"""


class OptionsError(ValueError):
    """A user-facing problem with the command-line options or the saved options of an experiment."""


class DatasetError(ValueError):
    """A user-facing problem with the dataset files (missing, unpaired, wrong mode or values)."""


class ModelError(RuntimeError):
    """A user-facing problem with a checkpoint, a cluster file or the model's inputs."""


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a failed save); the message says what is intact."""


USER_ERRORS = (DatasetError, ModelError, OptionsError, TrainingError)


def describe(error: BaseException) -> str:
    """An error's cause on one line: the OS's words for an OSError, the first line of anything else."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
