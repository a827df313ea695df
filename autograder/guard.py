"""What the worker refuses to do for a submission: an audit hook, installed before any student code runs.

An audit hook (PEP 578) cannot be removed once installed, so it holds at load time and at call time,
whatever the submission does to ``sys.modules``, ``sys.meta_path`` or ``importlib``:

- importing ``lgm``, ``nlgm`` or the reference solutions, and opening any file inside them (which is
  how every Python-level import reads a module), raises ImportError or PermissionError with a message
  that says the exercise asks for the student's own implementation;
- running other programs or processes (``os.system``, ``subprocess``, ``os.fork``, ``os.exec*``,
  ``os.posix_spawn``, ``pty``) and signalling other processes is refused;
- writing, renaming, removing or changing the permissions of files outside the worker's own
  folder is refused.

This is a second line of defence. Code that calls the C library itself (``ctypes``) can get past any
in-process check; what stops it is the operating system: the sandbox user, the resource limits and the
grader killing every process of the sandbox after each worker (``autograder.sandbox``).
"""
import os
import sys

IMPORT_MESSAGE = ("This exercise asks for your own implementation: the grader does not let a submission import "
                  "{name!r} (the book's package or its reference solutions). Write the function with numpy, "
                  "scipy (and torch where the page uses it).")
PROCESS_MESSAGE = ("The grader runs your functions only: starting other programs or processes, or signalling "
                   "them, is not allowed ({event}).")
OPEN_MESSAGE = ("The grader does not let a submission open the files of the book's package, its reference solutions "
                "or the grader ({path}): the exercise asks for your own implementation.")
WRITE_MESSAGE = "The grader does not let a submission change files outside its own working folder ({path})."

_PROCESS_EVENTS = {"os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                   "os.forkpty", "pty.spawn", "os.killpg", "os.startfile"}
_PATH_EVENTS = {"os.rename": 2, "os.replace": 2, "os.remove": 1, "os.unlink": 1, "os.rmdir": 1, "os.symlink": 2,
                "os.link": 2, "os.chmod": 1, "os.chown": 1, "os.lchown": 1, "os.truncate": 1, "os.mkdir": 1,
                "shutil.rmtree": 1, "os.utime": 1, "os.chflags": 1, "os.lchflags": 1, "os.setxattr": 1,
                "os.removexattr": 1, "shutil.chown": 1, "shutil.move": 2, "shutil.copyfile": 2}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _identity(path):
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


class _Rules:
    def __init__(self, names, blocked_dirs, writable_dirs):
        self.names = frozenset(names)
        self.blocked = tuple(os.path.realpath(d) for d in blocked_dirs if d)
        self.writable = tuple(os.path.realpath(d) for d in writable_dirs if d) + ("/dev/null",)
        self._writable_ids = {_identity(d) for d in writable_dirs if d} - {None}  # still itself when renamed
        self.refused = []  # the blocked modules the submission tried to import, for the instructor's note

    @staticmethod
    def _inside(path, folders):
        return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in folders)

    def _path(self, value):
        if isinstance(value, int) or value is None:
            return None  # a file descriptor: checked when it was opened
        try:
            return os.path.realpath(os.fsdecode(value))
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
        top = str(name).split(".")[0]
        if top in self.names:
            if top not in self.refused:
                self.refused.append(top)
            raise ImportError(IMPORT_MESSAGE.format(name=top))

    def _import(self, event, args):
        self.refuse_import(args[0])

    def _open(self, event, args):
        path = self._path(args[0])
        if path is None:
            return
        if self._inside(path, self.blocked):
            raise PermissionError(OPEN_MESSAGE.format(path=path))
        mode, flags = args[1] if len(args) > 1 else None, args[2] if len(args) > 2 else 0
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
        if writes and not self._may_write(path):
            raise PermissionError(WRITE_MESSAGE.format(path=path))

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
        table = {"import": self._import, "open": self._open, "os.kill": self._kill}
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


def install(names, blocked_dirs, writable_dirs):
    """Install the rules for this process; return them (``rules.refused`` lists refused imports).

    Parameters
    ----------
    names : iterable of str
        Top-level modules the submission may not import (``lgm``, ``nlgm``, ...).
    blocked_dirs : iterable of str
        Folders whose files the submission may not open (the package, the tests and solutions).
    writable_dirs : iterable of str
        Folders the submission may write in (its working folder).
    """
    rules = _Rules(names, blocked_dirs, writable_dirs)
    for name in list(sys.modules):
        if name.split(".")[0] in rules.names:
            del sys.modules[name]
    sys.path[:] = [p for p in sys.path if p and not rules._inside(os.path.realpath(p), rules.blocked)]
    sys.meta_path.insert(0, _Finder(rules))
    sys.addaudithook(rules.handlers())
    return rules
