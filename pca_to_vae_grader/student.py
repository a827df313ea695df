"""The grader's side of a submission: a worker process that runs it, called with a time limit.

``Student(path)`` reads the submission's cells (without running them) and starts
``python -m pca_to_vae_grader.sandboxed.worker`` in its own process, in the sandbox of :mod:`pca_to_vae_grader.sandbox`
(a fresh folder, a minimal environment, resource limits, optionally an unprivileged user), with
the submission's output read from a pipe (the first part kept, the rest dropped). ``student.gaussian_logpdf(X, mu, Sigma)`` sends the call to
the worker and waits for the reply; all the calls of one test together may take at most
``time_limit`` seconds (:meth:`Student.new_test` starts a test's budget). If the worker does not answer in
time, or dies (``os._exit()``, a segfault, running out of memory), it is killed and the failure
is reported for this test only, together with every process of the sandbox; the next call starts a
fresh worker, which loads the submission again. All loads together may take ``load_time_limit``
seconds: once that budget is spent, or after a load that crashed or timed out, the remaining tests fail
at once with that message. Every failure becomes a :class:`StudentFailure` whose message says what
happened in words a student can act on.
"""
import os
import queue
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path

from pca_to_vae_grader import audit
from pca_to_vae_grader.sandboxed import codec
from pca_to_vae_grader.compare import GradingFailure
from pca_to_vae_grader.results import from_submission
from pca_to_vae_grader.sandbox import Limits, Sandbox
from pca_to_vae_grader.sandboxed.submission import SubmissionError, read_cells

MAX_REPLY = 64 * 2**20
"""The longest reply accepted, in characters (about 48 MB of array data)."""
MAX_PROBLEMS = 21
"""Load problems kept: the worker reports at most 20 and a count of the rest (a forged reply may send more)."""


def _names(values, limit=200):
    """The identifiers among ``values`` (a list a reply carries), at most ``limit`` of them."""
    values = values if isinstance(values, list) else []
    return [str(v) for v in values if isinstance(v, str) and v.isidentifier() and len(v) < 100][:limit]


class StudentFailure(GradingFailure):
    """A call into the submission that did not return a value; the message is for the student."""


class Functions:
    """The submission's functions as attributes: ``student.f(*args)`` is ``student.call("f", *args)``.

    Shared by the sandboxed :class:`Student` and the notebook's ``KernelStudent``, so the tests call both
    the same way.
    """

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)

        def function(*args, **kwargs):
            return self.call(name, *args, **kwargs)

        function.__name__ = name
        return function


class Student(Functions):
    """A submission, loaded in a separate process, whose functions are attributes.

    Parameters
    ----------
    path : str or Path
        The submission (``.ipynb``, ``.md`` or ``.py``).
    time_limit : float
        Seconds the submission's code may run in one test (all its calls together).
    load_time_limit : float
        Seconds loading the submission (Python start-up, imports, definitions) may take, all its
        (re)starts together.
    user : str, optional
        Run the worker as this user (the grader must be root): on Gradescope the submission then
        cannot write the results file or the grader's files.
    limits : pca_to_vae_grader.sandbox.Limits, optional
        Memory, CPU time, processes, file size, kept output.
    trusted : bool
        The reference solutions, which may import the package (a submission may not).
    banned : tuple of str
        Modules this page's submission may not import (``BANNED_MODULES`` of its test module).
    """

    def __init__(self, path, *, time_limit=10.0, load_time_limit=60.0, user=None, limits=None, trusted=False,
                 banned=()):
        self.path = Path(path)
        self.time_limit = float(time_limit)
        self._budget = self.time_limit  # what is left of the current test's time limit
        self.load_time_limit = float(load_time_limit)
        self.load_seconds = 0.0  # spent loading, all (re)starts together: charged to load_time_limit
        self.loads = 0
        self.user = user
        self.problems = []  # what went wrong while reading or loading, one line each
        self.defined = None  # the functions and classes the submission defines, known after the first load
        self.imports = []  # the blocked modules the submission tried to import
        self.left_behind = 0  # processes the submission left running, killed by the grader
        self.output = bytearray()  # the first part of what the submission printed
        self._process = None
        self._counter = 0
        self._load_failure = None  # a load that timed out or crashed is not retried
        self._sandbox = None
        self._limits = limits or Limits()
        self._trusted = trusted
        self._banned = tuple(banned)
        try:
            self._cells = read_cells(self.path)
        except SubmissionError as error:
            self._cells = None
            self.problems.append(str(error))
        # A page that bans modules (the derivation pages) also refuses numerical stand-ins, read from the source here.
        self._refused = audit.refusals(self._cells) if self._banned and self._cells and not trusted else {}

    # -- the worker's life -------------------------------------------------------------------------

    def _start(self):
        if self._cells is None:
            raise StudentFailure(f"The grader could not read your submission: {self.problems[0]}.")
        if self._load_failure is not None:
            raise StudentFailure(self._load_failure)
        left = self.load_time_limit - self.load_seconds
        if left <= 0:
            self._load_failure = (
                f"The grader stopped restarting your submission: loading it {self.loads} times took "
                f"{self.load_seconds:.3g} s, the whole loading budget ({self.load_time_limit:g} s). Each crash of the "
                "process (sys.exit(), os._exit(), a segfault, a time limit) makes the grader load it again: "
                "fix the crash, and keep slow work out of the top level of your notebook.")
            raise StudentFailure(self._load_failure)
        if self._sandbox is None:
            self._sandbox = Sandbox(self.user, self._limits, trusted=self._trusted, banned=self._banned)
        token = secrets.token_hex(16)
        argv, kwargs, workdir = self._sandbox.popen_arguments(token)
        try:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8", **kwargs)
        except OSError as error:  # the grader's set-up, not the student's code
            as_user = f" as user {self.user!r}" if self.user else ""
            raise RuntimeError(f"the grader could not start its worker process{as_user}: {error}") from None
        self._sandbox.started(self._process.pid, token, workdir)
        self._replies = queue.Queue()
        threading.Thread(target=self._read, args=(self._process, self._replies), daemon=True).start()
        threading.Thread(target=self._drain, args=(self._process.stderr, self.output,
                                                   self._limits.output_kb * 1024), daemon=True).start()
        start = time.monotonic()
        self.loads += 1
        try:
            reply = self._request({"op": "load", "cells": self._cells}, left, "loading your submission",
                                  f" (loading may take {self.load_time_limit:g} s in all, restarts included)")
        except StudentFailure as failure:
            self._load_failure = str(failure)
            raise
        finally:
            self.load_seconds += time.monotonic() - start
        if self.defined is None:  # report load problems once, not after every restart
            # .get and str: a reply the submission wrote itself (on the worker's reply channel) cannot break the grader
            self.defined = _names(reply.get("defined"))
            self.imports = sorted(set(self.imports) | set(_names(reply.get("imports"), 20)))
            problems = reply.get("problems") if isinstance(reply.get("problems"), list) else []
            self.problems.extend("while loading, your code reported:\n" + from_submission(p, 500)
                                 for p in problems[:MAX_PROBLEMS])
            if len(problems) > MAX_PROBLEMS:
                self.problems.append(f"and {len(problems) - MAX_PROBLEMS} more problems (not kept)")

    @staticmethod
    def _drain(stream, kept, cap):
        """Read what the submission prints; keep the first ``cap`` bytes, drop the rest as it comes."""
        raw = stream.buffer if hasattr(stream, "buffer") else stream
        try:
            while chunk := raw.read1(65536) if hasattr(raw, "read1") else raw.read(65536):
                if len(kept) < cap:
                    kept.extend(chunk[: cap - len(kept)])
        except (OSError, ValueError):
            pass

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
        """End the worker and every process of the sandbox; only then is anything else done."""
        if self._process is None:
            return
        process, self._process = self._process, None
        if os.name != "posix":
            process.kill()
        self.left_behind += self._sandbox.sweep([process.pid])
        try:
            process.wait(timeout=10)  # killed already: only a process stuck in the kernel would take longer
        except subprocess.TimeoutExpired:
            pass
        for stream in (process.stdin, process.stdout, process.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def close(self):
        """Stop the worker, kill every process of the sandbox, and remove its folders."""
        self._kill()
        if self._sandbox is not None:
            self._sandbox.close()

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
                self._kill()  # its other processes go with it
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
        if name in self._refused or "*" in self._refused:
            raise StudentFailure(self._refused.get(name) or self._refused["*"])
        if self._process is not None and self._process.poll() is not None:
            self._kill()
        if self._process is None:
            self._start()
        message = {"op": "call", "name": name, "args": codec.to_jsonable(list(args)),
                   "kwargs": codec.to_jsonable(kwargs)}
        start = time.monotonic()
        try:
            reply = self._request(message, self._budget, f"the call of {name}",
                                  f" (each test may run your code for {self.time_limit:g} s in all)")
        finally:
            self._budget = max(self._budget - (time.monotonic() - start), 0.0)
        self.imports = sorted(set(self.imports) | set(_names(reply.get("imports"), 20)))
        return outcome(name, reply, problems=self.problems, defined=self.defined)


def outcome(name, reply, *, problems=(), defined=None):
    """The value of a call of the submission's function ``name`` from the worker's reply, or its failure.

    The sandboxed grader (:class:`Student`) and the check in the student's own kernel
    (:mod:`pca_to_vae_grader.notebook`) both read replies here, so a failure reads the same in both:
    the submission's own text (its error message, its traceback) capped and quoted with ``"> "``
    (:func:`pca_to_vae_grader.results.from_submission`), and at most 3 load notes per test.

    Raises
    ------
    StudentFailure
        What went wrong, in words a student can act on.
    """
    status = reply.get("status")
    if status == "ok":
        try:
            value = codec.from_jsonable(reply.get("value"))
        except (codec.CodecError, ValueError, TypeError) as error:  # a reply written by the submission itself
            raise StudentFailure(f"{name} sent back something the grader cannot read ({error}).") from None
        if _has_complex(value):
            raise StudentFailure(
                f"{name} returned complex numbers; real values are expected. A square root or logarithm of a "
                "negative number (np.emath, scipy.linalg.sqrtm, np.linalg.eig of a non-symmetric matrix) makes "
                "them: find where a negative number enters, do not drop the imaginary part.")
        return value
    if status == "missing":
        hint = _load_notes(problems)
        raise StudentFailure(
            f"Your submission does not define a function named {name}. Keep the name and the "
            "arguments of the stub exactly as given."
            + (f" It defines: {', '.join(defined)}." if defined else "")
            + (f" While loading it the grader noted:{hint}" if hint else "")
        )
    if status == "not-implemented":
        raise StudentFailure(f"{name} still raises NotImplementedError: replace the stub's body with your code.")
    raw = str(reply.get("error", f"an unknown reply {str(status)[:100]!r}"))
    error = from_submission(raw, 2100)
    if status == "bad-return":
        raise StudentFailure(f"{name} returned something the grader cannot compare:\n{error}")
    trace = f"\nWhere (innermost last):\n{from_submission(reply['traceback'], 2000)}" if reply.get("traceback") else ""
    if raw.startswith("SystemExit"):
        trace += "\nA graded function must return its result, not call sys.exit(), exit() or quit()."
    if raw.startswith("NameError") and problems:  # e.g. a module whose import the grader refused
        trace += "\nWhile loading your submission the grader noted:" + _load_notes(problems)
    raise StudentFailure(f"{name} raised an error:\n{error}{trace}")


def _load_notes(problems, shown=3):
    """The first load problems, for a test's message (all of them are listed once, at the top)."""
    text = "".join(f"\n  {p}" for p in problems[:shown])
    if len(problems) > shown:
        text += f"\n  ... {len(problems) - shown} more, listed once at the top of the results"
    return text


def _has_complex(value, depth=0):
    """Whether a decoded reply holds complex numbers anywhere (arrays, tensors, numbers, containers)."""
    if isinstance(value, complex) or getattr(getattr(value, "dtype", None), "is_complex", False) is True:
        return True
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind == "c":
        return True
    if isinstance(value, (tuple, list)) and depth < 20:
        return any(_has_complex(v, depth + 1) for v in value)
    if isinstance(value, dict) and depth < 20:
        return any(_has_complex(v, depth + 1) for v in value.values())
    return False


def _signal_name(code):
    if code is not None and code < 0:
        try:
            return f", killed by {signal.Signals(-code).name}"
        except ValueError:
            return ""
    return ""
