"""Background work a process must never wait for at exit.

``concurrent.futures.ThreadPoolExecutor`` joins its worker threads when the interpreter exits,
whatever they are blocked on: a one-shot ``fresh-solver solve --production`` that printed its
result within the registry's budget then sat ~9 s longer on a registry that accepted the
connection and never answered. This executor runs the same ``submit`` on daemon threads, which
exit with the process. Only for best-effort work whose result nobody needs after exit (the
loader's refreshes and registry observations).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class DaemonExecutor:
    """``submit(fn, *args) -> Future`` on at most ``max_workers`` daemon threads, started as
    work arrives."""

    def __init__(self, max_workers: int, name: str):
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._max_workers = max_workers
        self._name = name
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        self._work.put((future, fn, args))
        with self._lock:
            if len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._run, daemon=True,
                                          name=f"{self._name}_{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
        return future

    def _run(self) -> None:
        while True:
            future, fn, args = self._work.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # the caller's future carries it, as submit's would
                future.set_exception(exc)
