"""SIGINT/SIGTERM during training: stop cleanly after the current iteration; a second signal exits at once
(under torchrun a repeated SIGTERM is the same preemption and is ignored)."""

import signal
import sys

from .distributed import launched_by_torchrun


class StopRequest:
    """Set by the first SIGINT/SIGTERM; the training loop saves `latest` and returns when it sees it."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ''
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame) -> None:
        if self.requested and signum == signal.SIGTERM and launched_by_torchrun():
            # A cluster's preemption reaches a worker twice: from the scheduler (SLURM signals every process
            # of the job) and forwarded by torchrun. Both mean "save and stop"; Ctrl-C twice still exits.
            return
        if self.requested:
            # Files are written to a temporary name (a checkpoint to a staging folder) and renamed, so exiting
            # now corrupts nothing; SystemExit lets a save discard its staging folder or finish its renames.
            sys.exit(128 + signum)
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(f'\n{self.signal_name} received: saving after this iteration (send it again to exit at once)', flush=True)
