"""The grader's side of a submission: a worker process that runs it, called with a time limit.

``Student(path)`` reads the submission's cells (without running them) and starts
``python -m autograder.worker`` in its own process, in an empty temporary folder, with the
submission's output captured to a file. ``student.gaussian_logpdf(X, mu, Sigma)`` sends the call to
the worker and waits for the reply; all the calls of one test together may take at most
``time_limit`` seconds (:meth:`Student.new_test` starts a test's budget). If the worker does not answer in
time, or dies (``os._exit()``, a segfault, running out of memory), it is killed and the failure
is reported for this test only; the next call starts a fresh worker, which loads the submission
again. Every failure becomes a :class:`StudentFailure` whose message says what
happened in words a student can act on.
"""
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from autograder import codec
from autograder.compare import GradingFailure
from autograder.submission import SubmissionError, read_cells

ROOT = Path(__file__).resolve().parents[1]
MAX_REPLY = 64 * 2**20
"""The longest reply accepted, in characters (about 48 MB of array data)."""


class StudentFailure(GradingFailure):
    """A call into the submission that did not return a value; the message is for the student."""


class Student:
    """A submission, loaded in a separate process, whose functions are attributes.

    Parameters
    ----------
    path : str or Path
        The submission (``.ipynb``, ``.md`` or ``.py``).
    time_limit : float
        Seconds the submission's code may run in one test (all its calls together).
    load_time_limit : float
        Seconds loading the submission (Python start-up, imports, definitions) may take.
    user : str, optional
        Run the worker as this user (the grader must be root): on Gradescope the submission then
        cannot write the results file or the grader's files.
    """

    def __init__(self, path, *, time_limit=10.0, load_time_limit=60.0, user=None):
        self.path = Path(path)
        self.time_limit = float(time_limit)
        self._budget = self.time_limit  # what is left of the current test's time limit
        self.load_time_limit = float(load_time_limit)
        self.user = user
        self.problems = []  # what went wrong while reading or loading, one line each
        self.defined = None  # the functions and classes the submission defines, known after the first load
        self.imports = []
        self._process = None
        self._counter = 0
        self._load_failure = None  # a load that timed out or crashed is not retried
        self._folder = tempfile.TemporaryDirectory(prefix="autograder-")
        self._capture = Path(self._folder.name) / "output.txt"
        try:
            self._cells = read_cells(self.path)
        except SubmissionError as error:
            self._cells = None
            self.problems.append(str(error))

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)

        def function(*args, **kwargs):
            return self.call(name, *args, **kwargs)

        function.__name__ = name
        return function

    # -- the worker's life -------------------------------------------------------------------------

    def _start(self):
        if self._cells is None:
            raise StudentFailure(f"The grader could not read your submission: {self.problems[0]}.")
        if self._load_failure is not None:
            raise StudentFailure(self._load_failure)
        workdir = Path(self._folder.name) / "work"
        workdir.mkdir(exist_ok=True)
        if self.user is not None:
            import shutil

            shutil.chown(self._folder.name, user=self.user)
            shutil.chown(workdir, user=self.user)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "autograder.worker", str(self._capture)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                cwd=workdir, env=env, text=True, encoding="utf-8",
                start_new_session=(os.name == "posix"), user=self.user,
            )
        except OSError as error:  # the grader's set-up, not the student's code
            as_user = f" as user {self.user!r}" if self.user else ""
            raise RuntimeError(f"the grader could not start its worker process{as_user}: {error}") from None
        self._replies = queue.Queue()
        threading.Thread(target=self._read, args=(self._process, self._replies), daemon=True).start()
        try:
            reply = self._request({"op": "load", "cells": self._cells}, self.load_time_limit, "loading your submission")
        except StudentFailure as failure:
            self._load_failure = str(failure)
            raise
        if self.defined is None:  # report load problems once, not after every restart
            self.defined, self.imports = reply["defined"], reply["imports"]
            self.problems.extend(reply["problems"])

    @staticmethod
    def _read(process, replies):
        """Put each reply line on the queue; a line longer than MAX_REPLY becomes a refusal; None at the end."""
        while True:
            line = process.stdout.readline(MAX_REPLY)
            if not line:
                break
            if len(line) == MAX_REPLY and not line.endswith("\n"):
                while (rest := process.stdout.readline(MAX_REPLY)) and not rest.endswith("\n"):
                    pass  # skip the rest of the oversized line without keeping it
                line = codec.dumps({"status": "too-large"})
            replies.put(line)
        replies.put(None)

    def _kill(self):
        if self._process is None:
            return
        try:
            if os.name == "posix":
                os.killpg(self._process.pid, signal.SIGKILL)
            else:
                self._process.kill()
        except (ProcessLookupError, PermissionError):
            pass
        self._process.wait()
        self._process = None

    def close(self):
        """Stop the worker and remove its folder."""
        self._kill()
        self._folder.cleanup()

    # -- one request -------------------------------------------------------------------------------

    def _request(self, message, limit, doing, rule=""):
        self._counter += 1
        message = dict(message, id=self._counter, token=secrets.token_hex(16))
        try:
            self._process.stdin.write(codec.dumps(message))
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker died; the reply loop below says how
        deadline = time.monotonic() + limit
        while True:
            try:
                line = self._replies.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                self._kill()
                raise StudentFailure(
                    f"Time limit: the grader stopped {doing} after {limit:.3g} s{rule}. "
                    "Look for a loop that never ends (a while loop whose condition never changes), "
                    "or for work that grows much faster than it should (a d x d inverse inside a loop)."
                ) from None
            if line is None:
                try:
                    code = self._process.wait(timeout=max(deadline - time.monotonic(), 1.0))
                except subprocess.TimeoutExpired:  # it closed the reply channel but lives on
                    self._kill()
                    raise StudentFailure(f"The process running your code stopped answering during {doing}: "
                                         "does your code close file descriptors or redirect output?") from None
                self._process = None
                raise StudentFailure(
                    f"The process running your code ended during {doing} (exit code {code}"
                    f"{_signal_name(code)}). Calls such as sys.exit(), exit(), quit() or os._exit() end the "
                    "process; a crash in compiled code (a segfault) or running out of memory does too."
                )
            try:
                reply = codec.loads(line)
            except codec.CodecError:
                continue  # not a reply: ignore it
            if reply.get("status") == "too-large" and set(reply) == {"status"}:
                self._kill()
                raise StudentFailure(f"During {doing}, your code sent back more than {MAX_REPLY // 2**20} MB: "
                                     "does it return a much larger array than asked for?")
            if reply.get("id") == message["id"] and reply.get("token") == message["token"]:
                break
        if reply.get("status") == "protocol-error":
            raise RuntimeError(f"autograder protocol error while {doing}: {reply.get('error')}")
        return reply

    def new_test(self):
        """Start the time budget of a new test: ``time_limit`` seconds for all its calls."""
        self._budget = self.time_limit

    def call(self, name, *args, **kwargs):
        """Call the submission's function ``name`` in the worker and return its decoded value.

        Raises
        ------
        StudentFailure
            The function is missing, still raises NotImplementedError, raised an error, returned
            something that is not numbers, ran past the time limit, or ended the process.
        """
        if self._process is None or self._process.poll() is not None:
            self._process = None
            self._start()
        message = {"op": "call", "name": name, "args": codec.to_jsonable(list(args)),
                   "kwargs": codec.to_jsonable(kwargs)}
        start = time.monotonic()
        try:
            reply = self._request(message, self._budget, f"the call of {name}",
                                  f" (each test may run your code for {self.time_limit:g} s in all)")
        finally:
            self._budget = max(self._budget - (time.monotonic() - start), 0.0)
        status = reply["status"]
        if status == "ok":
            return codec.from_jsonable(reply["value"])
        if status == "missing":
            hint = "".join(f"\n  {p}" for p in self.problems)
            raise StudentFailure(
                f"Your submission does not define a function named {name}. Keep the name and the "
                "arguments of the stub exactly as given."
                + (f" It defines: {', '.join(self.defined)}." if self.defined else "")
                + (f" While loading it the grader noted:{hint}" if hint else "")
            )
        if status == "not-implemented":
            raise StudentFailure(f"{name} still raises NotImplementedError: replace the stub's body with your code.")
        if status == "bad-return":
            raise StudentFailure(f"{name} returned something the grader cannot compare: {reply['error']}.")
        trace = f"\nWhere (innermost last):\n{reply['traceback']}" if reply.get("traceback") else ""
        if reply["error"].startswith("SystemExit"):
            trace += "\nA graded function must return its result, not call sys.exit(), exit() or quit()."
        raise StudentFailure(f"{name} raised {reply['error']}{trace}")


def _signal_name(code):
    if code is not None and code < 0:
        try:
            return f", killed by {signal.Signals(-code).name}"
        except ValueError:
            return ""
    return ""
