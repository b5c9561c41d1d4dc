"""The editor's model thread: renders the newest version of each session's document (older pending ones are
skipped), sessions in turn, then side jobs."""

import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class RenderError(RuntimeError):
    """The model failed on a document version, or the session went away; the message goes to the page."""


class CoalescingRenderer:
    """One worker thread owns the model. `submit` replaces a version of the same session still waiting, so a
    burst of edits costs one or two generator runs and the newest edit wins; sessions waiting are served in
    the order they first asked (a busy one cannot starve another); side jobs (style swatches) run only when
    no document version is waiting."""

    def __init__(self, render: Callable[[Any], Any]) -> None:
        self._render = render
        self._condition = threading.Condition()
        self._pending: collections.OrderedDict = collections.OrderedDict()  # session -> (version, state) to render
        self._done: dict = {}  # session -> (version, output, error message, seconds) of its newest render
        self._jobs: collections.deque = collections.deque()
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

    def submit(self, session: Hashable, version: int, state: Any) -> None:
        """Ask for `state` (version `version` of `session`'s document) to be rendered, replacing one still waiting."""
        with self._condition:
            self._pending[session] = (version, state)  # an existing session keeps its place in the queue
            self._done.setdefault(session, (0, None, None, 0.0))
            self._condition.notify_all()

    def forget(self, session: Hashable) -> None:
        """Drop a closed session's pending version and last image; its waiting requests get RenderError."""
        with self._condition:
            self._pending.pop(session, None)
            self._done.pop(session, None)
            self._condition.notify_all()

    def result(self, session: Hashable, min_version: int, timeout: float) -> tuple:
        """(version, output, seconds) of `session`'s newest render, once its version is >= min_version."""
        with self._condition:
            ready = self._condition.wait_for(
                lambda: self._stopped or session not in self._done or self._done[session][0] >= min_version, timeout
            )
            if not ready:
                raise TimeoutError(f"no image for edit {min_version} after {timeout:.0f} s")
            if session not in self._done or self._stopped:
                raise RenderError("this document was closed (its session ended, or the editor is stopping): reload the page")
            version, output, error, seconds = self._done[session]
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
                self._condition.wait_for(lambda: self._pending or self._jobs or self._stopped)
                if self._stopped:
                    return
                pending = self._pending.popitem(last=False) if self._pending else None
                job = self._jobs.popleft() if pending is None else None
            if pending is not None:
                session, (version, state) = pending
                self._render_version(session, version, state)
            elif job is not None:
                self._run_job(*job)

    def _render_version(self, session: Hashable, version: int, state: Any) -> None:
        started = time.perf_counter()
        output, error = None, None
        try:
            output = self._render(state)
        except Exception as failure:  # shown on the page; the editor keeps serving
            error = f"the model failed on this map: {type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''}"
        with self._condition:
            if session in self._done:  # else the session was closed meanwhile
                self._done[session] = (version, output, error, time.perf_counter() - started)
            self._condition.notify_all()

    @staticmethod
    def _run_job(job: Callable[[], Any], future: concurrent.futures.Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(job())
        except Exception as failure:  # delivered to the waiting request
            future.set_exception(failure)
