"""What the worker refuses to do for a submission: an audit hook, installed before any student code runs.

An audit hook (PEP 578) cannot be removed once installed, so it holds at load time and at call time,
whatever the submission does to ``sys.modules``, ``sys.meta_path`` or ``importlib``:

- importing ``lgm``, ``nlgm`` or the reference solutions, and opening any file inside them (which is
  how every Python-level import reads a module), raises ImportError or PermissionError with a message
  that says the exercise asks for the student's own implementation;
- running other programs or processes (``os.system``, ``subprocess``, ``os.fork``, ``os.exec*``,
  ``os.posix_spawn``, ``pty``), signalling other processes and opening their files in ``/proc`` (the
  grader's memory, its environment) is refused;
- writing, renaming, removing or changing the permissions of files outside the worker's own
  folder is refused.

Relative paths are checked against the working folder, which is why the submission may neither leave
it (``os.chdir``) nor open a folder outside it: the audit event of ``os.open(path, dir_fd=fd)`` does
not carry ``fd``, and a descriptor of a folder above the working folder (or a working directory below
the folder ``fd`` names) would let a relative path that looks inside reach any file.

This is a second line of defence, which gives an honest submission a clear message: it runs in the
submission's own process, so code that sets out to get past it can (replace a function it relies on,
such as ``os.path.realpath``; reach its state through the frames of the error it raises; call the C
library with ``ctypes``; use compiled code that opens files or processes without an audit event, such
as torch's ``from_file`` and ``save`` or a fresh copy of a builtin module such as ``_signal``). What
stops such code is the operating system: the sandbox user, file permissions (the folders of the package,
the grader and the page's banned modules are closed to the worker's groups), the resource limits and the
grader ending every process of the sandbox user before and after each worker (``pca_to_vae_grader.sandbox``).
"""
import os
import sys

IMPORT_MESSAGE = ("This exercise asks for your own implementation: the grader does not let a submission import "
                  "{name!r} (the book's package or its reference solutions). Write the function with numpy, "
                  "scipy (and torch where the page uses it).")
PROCESS_MESSAGE = ("The grader runs your functions only: starting other programs or processes, signalling them "
                   "or reading their files in /proc is not allowed ({event}).")
OPEN_MESSAGE = ("The grader does not let a submission open the files of the book's package, its reference solutions "
                "or the grader ({path}): the exercise asks for your own implementation.")
BANNED_MESSAGE = ("This page asks you to derive the quantities yourself: the grader does not let a submission import "
                  "{name!r} here (its automatic differentiation or distributions would do the derivation for you). "
                  "Write the functions with numpy and scipy; the page's self-check cells may use it, your functions "
                  "may not.")
WRITE_MESSAGE = "The grader does not let a submission change files outside its own working folder ({path})."
FOLDER_MESSAGE = ("The grader does not let a submission open folders outside its own working folder, or change its "
                  "working directory ({path}): open files by their path.")

_PROCESS_EVENTS = {"os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                   "os.forkpty", "pty.spawn", "os.killpg", "os.startfile"}
_PATH_EVENTS = {"os.rename": 2, "os.replace": 2, "os.remove": 1, "os.unlink": 1, "os.rmdir": 1, "os.symlink": 2,
                "os.link": 2, "os.chmod": 1, "os.chown": 1, "os.lchown": 1, "os.truncate": 1, "os.mkdir": 1,
                "shutil.rmtree": 1, "os.utime": 1, "os.chflags": 1, "os.lchflags": 1, "os.setxattr": 1,
                "os.removexattr": 1, "shutil.chown": 1, "shutil.move": 2, "shutil.copyfile": 2, "sqlite3.connect": 1}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _plain(value):
    """``value`` (a path or a name) as an exact ``str``, copied without calling a method of its class: a
    ``str`` subclass could otherwise tell ``os.path.realpath`` one path while the system call uses another."""
    if not isinstance(value, (str, bytes, bytearray)):
        value = os.fspath(value)
    if isinstance(value, str):
        return "".join((value,))
    return os.fsdecode(b"".join((value,)))


def _identity(path):
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


class _Rules:
    def __init__(self, names, blocked_dirs, writable_dirs, banned=()):
        self.names = frozenset(names)
        self.banned = frozenset(banned)
        self.blocked = tuple(os.path.realpath(d) for d in blocked_dirs if d)
        self.writable = tuple(os.path.realpath(d) for d in writable_dirs if d) + ("/dev/null",)
        self._writable_ids = {_identity(d) for d in writable_dirs if d} - {None}  # still itself when renamed
        self.home = self.writable[0] if writable_dirs else None  # the working directory, for good
        self.refused = []  # the blocked modules the submission tried to import, for the instructor's note

    @staticmethod
    def _inside(path, folders):
        return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)

    def _path(self, value):
        if isinstance(value, int) or value is None:
            return None  # a file descriptor: checked when it was opened
        try:
            return os.path.realpath(_plain(value))
        except (TypeError, ValueError):
            return None

    def _may_write(self, path):
        if self._inside(path, self.writable):
            return True
        folder = os.path.dirname(path)
        while folder and folder != os.path.dirname(folder):
            if _identity(folder) in self._writable_ids:
                return True
            folder = os.path.dirname(folder)
        return False

    def refuse_import(self, name):
        top = _plain(name).split(".")[0] if isinstance(name, str) else str(name)
        if top == "_posixsubprocess":  # a fresh copy would bring back the fork_exec that install() closed
            raise PermissionError(PROCESS_MESSAGE.format(event="_posixsubprocess"))
        if top in self.names or top in self.banned:
            if top not in self.refused:
                self.refused.append(top)
            raise ImportError((IMPORT_MESSAGE if top in self.names else BANNED_MESSAGE).format(name=top))

    def _import(self, event, args):
        self.refuse_import(args[0])

    def _open(self, event, args):
        path = self._path(args[0])
        if path is None:
            return
        if self._inside(path, self.blocked):
            raise PermissionError(OPEN_MESSAGE.format(path=path))
        parts = path.split(os.sep)
        if len(parts) > 3 and parts[1] == "proc" and parts[2].isdigit() and int(parts[2]) != os.getpid():
            raise PermissionError(PROCESS_MESSAGE.format(event=f"open {path}"))
        mode, flags = args[1] if len(args) > 1 else None, args[2] if len(args) > 2 else 0
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
        if writes and not self._may_write(path):
            raise PermissionError(WRITE_MESSAGE.format(path=path))
        if os.path.isdir(path) and not self._may_write(path):  # its descriptor would serve as a dir_fd
            raise PermissionError(FOLDER_MESSAGE.format(path=path))

    def _chdir(self, event, args):
        if self._path(args[0]) != self.home:
            raise PermissionError(FOLDER_MESSAGE.format(path=args[0]))

    def _process(self, event, args):
        raise PermissionError(PROCESS_MESSAGE.format(event=event))

    def _kill(self, event, args):
        if args[0] != os.getpid():
            raise PermissionError(PROCESS_MESSAGE.format(event=event))

    def _change(self, event, args):
        for value in args[:_PATH_EVENTS[event]]:
            path = self._path(value)
            if path is not None and not self._may_write(path):
                raise PermissionError(WRITE_MESSAGE.format(path=path))

    def handlers(self):
        """The audit hook: one dictionary look-up for the many events it lets through (``builtins.id``...)."""
        table = {"import": self._import, "open": self._open, "os.kill": self._kill, "os.chdir": self._chdir}
        table.update(dict.fromkeys(_PROCESS_EVENTS, self._process))
        table.update(dict.fromkeys(_PATH_EVENTS, self._change))
        get = table.get

        def hook(event, args):
            handler = get(event)
            if handler is not None:
                handler(event, args)

        return hook


class _Finder:
    """A meta-path finder that refuses the blocked modules with the same message (before any search)."""

    def __init__(self, rules):
        self.rules = rules

    def find_spec(self, name, path=None, target=None):
        self.rules.refuse_import(name)
        return None


def _refused_fork_exec(*args, **kwargs):
    raise PermissionError(PROCESS_MESSAGE.format(event="_posixsubprocess.fork_exec"))


def _close_fork_exec():
    """``_posixsubprocess.fork_exec`` starts a program without an audit event (``subprocess`` raises its
    own first, but the submission can call it directly): replace it where it is reachable. The module is
    loaded now, so a later ``import _posixsubprocess`` gets this copy; a fresh one is refused."""
    try:
        import _posixsubprocess
        import subprocess
    except ImportError:  # Windows
        return
    _posixsubprocess.fork_exec = _refused_fork_exec
    if hasattr(subprocess, "_fork_exec"):  # Python 3.12 and later keep their own reference
        subprocess._fork_exec = _refused_fork_exec


def install(names, blocked_dirs, writable_dirs, banned=()):
    """Install the rules for this process; return them (``rules.refused`` lists refused imports).

    Parameters
    ----------
    names : iterable of str
        Top-level modules the submission may not import (``lgm``, ``nlgm``, ...).
    blocked_dirs : iterable of str
        Folders whose files the submission may not open (the package, the tests and solutions).
    writable_dirs : iterable of str
        Folders the submission may write in (its working folder).
    banned : iterable of str
        Further top-level modules this page's submission may not import (``torch`` on the pages whose
        exercises are derivations, where autograd would do the work), refused with their own message.
    """
    rules = _Rules(names, blocked_dirs, writable_dirs, banned)
    _close_fork_exec()
    for name in list(sys.modules):
        if name.split(".")[0] in rules.names | rules.banned:
            del sys.modules[name]
    sys.path[:] = [p for p in sys.path if p and not rules._inside(os.path.realpath(p), rules.blocked)]
    sys.meta_path.insert(0, _Finder(rules))
    sys.addaudithook(rules.handlers())
    return rules
