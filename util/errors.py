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
