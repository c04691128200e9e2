"""Run a job off the GUI thread, or synchronously for tests.

A :class:`Job` drives a generator such as :func:`._logic.reconstruction_job` and calls
back ``on_yield`` for each value, then ``on_return`` with the generator's return value or
``on_error`` with its exception, then ``on_finish``. A plain function that reports its
progress through a callback (:meth:`Job.of_function`, e.g. a simulation) runs the same
way. By default it runs in a napari
``thread_worker`` (the callbacks arrive on the GUI thread through Qt signals, so the UI
stays responsive); with the environment variable ``IMAGING_NAPARI_NOTHREADS=1``, read
each time a job starts, it runs in the calling thread, which makes widget tests
deterministic (the same switch stardist-napari uses).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Generator
from typing import Any

NOTHREADS_ENV = "IMAGING_NAPARI_NOTHREADS"


def threads_disabled() -> bool:
    """True when ``IMAGING_NAPARI_NOTHREADS`` is set to 1/true/yes (checked at call time)."""
    return os.environ.get(NOTHREADS_ENV, "").strip().lower() in ("1", "true", "yes")


def _ignore(*_args) -> None:
    return None


class JobStopped(Exception):
    """Raised inside a function job by its ``report`` callback once a stop was requested."""


class _NamedWork(functools.partial):
    """A call that prints as its job's description.

    napari's activity dock and close dialog show a running worker as ``f"{function}"``
    ("Executing <function work at 0x...>" for a plain function); a partial still counts
    as a generator function for the worker class.
    """

    name = ""

    def __repr__(self) -> str:
        return self.name


def _call(function: Callable[[], Any]) -> Generator[Any, Any, Any]:
    """A generator that yields nothing and returns ``function()``."""
    return function()
    yield  # makes this function a generator


class Job:
    """One run of a generator with callbacks; stoppable between two yields.

    Parameters
    ----------
    generator : Generator
        The work. Sending ``True`` into it asks it to stop and return what it has.
    on_yield, on_return, on_error, on_finish : callable, optional
        Called with each yielded value, the return value, the exception, and nothing.
    description : str
        The name of the job: napari's close dialog lists running jobs by it.

    Notes
    -----
    The job gives napari no progress bar of its own: the widgets show progress in
    their panels, and napari's activity bar costs the GUI thread a stall when it is
    first built and, on software OpenGL, a busy animation while any bar runs.
    """

    def __init__(
        self,
        generator: Generator[Any, Any, Any],
        *,
        on_yield: Callable[[Any], None] = _ignore,
        on_return: Callable[[Any], None] = _ignore,
        on_error: Callable[[BaseException], None] = _ignore,
        on_finish: Callable[[], None] = _ignore,
        description: str = "",
    ):
        self._generator = generator
        self._on_yield = on_yield
        self._on_return = on_return
        self._on_error = on_error
        self._on_finish = on_finish
        self._description = description
        self._stop_requested = False
        self._worker = None
        self.running = False

    @classmethod
    def of_function(cls, function: Callable[[Callable[[Any], None]], Any], **options) -> Job:
        """A job that runs ``function(report)`` once.

        ``report(value)`` passes ``value`` to ``on_yield`` (on the GUI thread) and raises
        :class:`JobStopped` once a stop has been requested, which ends the function;
        ``on_error`` then receives that :class:`JobStopped`. ``options`` are those of
        :class:`Job`.
        """
        job = cls(_call(lambda: function(job.report)), **options)
        return job

    def report(self, value: Any) -> None:
        """Send a progress value from inside a function job (any thread)."""
        if self._stop_requested:
            raise JobStopped
        if self._worker is not None:
            self._worker.yielded.emit(value)
        elif self.running:
            self._on_yield(value)

    def start(self) -> None:
        """Run the generator in a thread worker, or to completion here when threads are off."""
        self.running = True
        if threads_disabled():
            self._run_here()
        else:
            self._start_worker()

    def request_stop(self) -> None:
        """Ask the generator to stop after its current step (it then returns its result)."""
        self._stop_requested = True
        if self._worker is not None:
            self._worker.send(True)

    def detach(self) -> None:
        """Ask the job to stop and drop its callbacks, whose widgets are being deleted.

        The worker thread may deliver results after its widgets are gone (the viewer was
        closed mid-run); they then go nowhere instead of into deleted Qt objects.
        """
        self._on_yield = self._on_return = self._on_error = _ignore
        self._on_finish = _ignore
        self.request_stop()

    def _run_here(self) -> None:
        try:
            value = next(self._generator)
            while True:
                self._on_yield(value)
                value = self._generator.send(True if self._stop_requested else None)
        except StopIteration as finished:
            self._on_return(finished.value)
        except Exception as exc:  # every failure is reported to the user, none crashes the GUI
            self._on_error(exc)
        finally:
            self._finished()

    def _start_worker(self) -> None:
        from napari.qt.threading import create_worker
        from superqt.utils import GeneratorWorker

        def work():
            return (yield from self._generator)

        named_work = _NamedWork(work)
        named_work.name = self._description or "imaging job"

        # superqt's plain GeneratorWorker, not napari's subclass: napari's relays every
        # exception to its traceback dialog, whereas ``on_error`` shows a plain message.
        self._worker = create_worker(
            named_work,
            _worker_class=GeneratorWorker,
            _start_thread=False,
            # Looked up at each call, so that detach() takes effect on a running worker.
            _connect={
                "yielded": lambda value: self._on_yield(value),
                "returned": lambda value: self._on_return(value),
                "errored": lambda exc: self._on_error(exc),
                "finished": self._finished,
            },
        )
        if self._stop_requested:
            self._worker.send(True)
        self._worker.start()

    def _finished(self) -> None:
        self.running = False
        self._worker = None
        self._on_finish()
