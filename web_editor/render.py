"""The editor's model thread: renders the newest document version (older pending ones are skipped), then side jobs."""

import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any


class RenderError(RuntimeError):
    """The model failed on a document version; the message goes to the page."""


class CoalescingRenderer:
    """One worker thread owns the model. `submit` replaces any version still waiting, so a burst of edits
    costs one or two generator runs and the newest edit wins; side jobs (style swatches) run only when
    no document version is waiting."""

    def __init__(self, render: Callable[[Any], Any]) -> None:
        self._render = render
        self._condition = threading.Condition()
        self._pending: tuple | None = None  # (version, state) waiting to be rendered
        self._jobs: collections.deque = collections.deque()
        self._done: tuple[int, Any, str | None, float] = (0, None, None, 0.0)  # (version, output, error message, seconds)
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name='editor-render', daemon=True)

    def start(self) -> 'CoalescingRenderer':
        """Start the worker thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Let the worker finish its current render and exit."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        self._thread.join(timeout=60)

    def submit(self, version: int, state: Any) -> None:
        """Ask for `state` (document version `version`) to be rendered, replacing an older request still waiting."""
        with self._condition:
            self._pending = (version, state)
            self._condition.notify_all()

    def result(self, min_version: int, timeout: float) -> tuple:
        """(version, output, seconds) of the newest render, once its version is >= min_version."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._done[0] >= min_version or self._stopped, timeout):
                raise TimeoutError(f"no image for edit {min_version} after {timeout:.0f} s")
            version, output, error, seconds = self._done
        if error is not None:
            raise RenderError(error)
        return version, output, seconds

    def run_job(self, job: Callable[[], Any], timeout: float) -> Any:
        """Run `job` on the worker thread when no document version is waiting, and return its result."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._condition:
            self._jobs.append((job, future))
            self._condition.notify_all()
        return future.result(timeout)

    def _loop(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending is not None or self._jobs or self._stopped)
                if self._stopped:
                    return
                pending, self._pending = self._pending, None
                job = self._jobs.popleft() if pending is None else None
            if pending is not None:
                self._render_version(*pending)
            elif job is not None:
                self._run_job(*job)

    def _render_version(self, version: int, state: Any) -> None:
        started = time.perf_counter()
        output, error = None, None
        try:
            output = self._render(state)
        except Exception as failure:  # shown on the page; the editor keeps serving
            error = f"the model failed on this map: {type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''}"
        with self._condition:
            self._done = (version, output, error, time.perf_counter() - started)
            self._condition.notify_all()

    @staticmethod
    def _run_job(job: Callable[[], Any], future: concurrent.futures.Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(job())
        except Exception as failure:  # delivered to the waiting request
            future.set_exception(failure)
