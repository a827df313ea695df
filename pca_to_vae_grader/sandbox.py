"""The worker's sandbox, on the grader's side: its user, its folders, its environment, its limits, and its end.

Each start of a worker gets a fresh temporary folder created by the grader (``mkdtemp``, which no
other user can have prepared or swapped); with a sandbox user, only that new folder is handed to the
user, through a file descriptor opened with ``O_NOFOLLOW`` (never a ``chown`` of a path, which a
submission could have replaced by a link). The worker runs ``python -m pca_to_vae_grader.sandboxed.worker`` from a
private copy of the worker's modules (:func:`runtime`), so neither the repository nor the grader's
files are on its path, with a minimal environment (never the grader's), and it sets its own resource
limits before any student code runs (:class:`Limits`).

With a sandbox user (the grader runs as root; on Gradescope, and wherever a class is graded):

- **One user per grading.** ``--sandbox-user`` names a user, a uid, or a range of uids (``UID_RANGE``
  on Gradescope); each :class:`Sandbox` takes a uid of it that no other grading on this machine holds
  (a lock in a folder of root's, :func:`claim_user`), so gradings at once never share a user, and
  ending one user's processes never touches another grading.
- **Its end, by root.** :func:`end_user` stops every process of that uid (SIGSTOP) until none runs,
  then kills them all, as root: no process of the user can signal it, a fork bomb cannot outrun it, and
  a process that left the worker's session goes too. It runs before each worker and after it, and
  every wait has a time limit.
- **What it cannot read.** The package, the tests, the grader, and the modules the page bans (torch on
  the derivation pages) are closed to the worker by the kernel: each such folder gets a group of its
  own (:func:`deny_gid`) without group permissions, and the worker runs in those groups, which it
  cannot leave (:func:`close_to_group`; ``PR_SET_NO_NEW_PRIVS`` in the worker stops setuid programs).
  Nothing changes for any other user.
- **A check first.** Before any submission runs, the sandbox runs the worker's imports as that user
  and checks that the closed folders stay closed; if not, :class:`SandboxError` says what cannot be
  read and the fix (the grader then refuses to grade, with that one message).

Without a sandbox user (a laptop), :meth:`Sandbox.sweep` kills the worker's session and process group,
every process that carries the worker's random token in its environment, and their descendants; and,
when the grader is a subreaper (:func:`become_subreaper`, in a grading run), every other child of the
grader, which is where an orphan that left the session ends up. A process that cleared its
environment, left the session and escaped the grader's process tree (``ctypes`` can do all three) is
not found: local grading without a sandbox user protects against accidents, not attacks. Where there
is no ``/proc`` (macOS), only the worker's process group is killed; on Windows, only the worker.
"""
import json
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
WORKER_MODULES = ("__init__.py", "worker.py", "codec.py", "submission.py", "guard.py")
"""What the worker runs (the ``sandboxed`` subpackage): copied into a private folder, away from the package and
the tests."""
BLOCKED_MODULES = ("lgm", "nlgm", "solutions", "mistakes", "tests", "conftest")
UID_RANGE = "61000-61999"
"""The sandbox users of the Gradescope script: uids without an account, one per grading (:func:`claim_user`)."""
DENY_GIDS = 62000
"""The first of 1000 groups that deny: a folder the sandbox must not read gets the group of its module
(:func:`deny_gid`) and no group permissions, and the worker runs in that group (see :class:`Sandbox`)."""
LOCKS = ("/run", tempfile.gettempdir())
"""Where the locks of the sandbox users live (the first that works): a folder of root's, mode 700."""


class SandboxError(RuntimeError):
    """The sandbox cannot be set up here: the message says what is wrong and how to fix it."""


_subreaper = False
_LIVE = set()  # the workers of every Sandbox of this process that are running: never an orphan to kill


@dataclass(frozen=True)
class Limits:
    """Resource limits of a worker (``resource.setrlimit`` in the worker, before student code runs).

    Attributes
    ----------
    memory_mb : int
        Address space (RLIMIT_AS), in MiB: a larger allocation raises MemoryError.
    cpu_seconds : int
        CPU time of each process (RLIMIT_CPU): a backstop behind the grader's wall-clock limits.
    processes : int
        Processes and threads of the sandbox user (RLIMIT_NPROC); without a sandbox user, this many
        more than the grading user runs already (not enforced for root).
    file_mb : int
        The largest file the submission may write (RLIMIT_FSIZE), in MiB.
    output_kb : int
        How much of what the submission prints the grader keeps, in KiB; the rest is read and dropped.
    """

    memory_mb: int = 6144
    cpu_seconds: int = 600
    processes: int = 256
    file_mb: int = 64
    output_kb: int = 256

    def encode(self, *, sandbox_user):
        fields = {"as": self.memory_mb * 2**20, "cpu": self.cpu_seconds, "fsize": self.file_mb * 2**20}
        # RLIMIT_NPROC counts every process of the user: the sandbox user runs nothing else; the grading
        # user (no sandbox user) gets this many on top of what it runs already (root ignores the limit).
        fields["nproc" if sandbox_user else "nproc_more"] = self.processes
        return ",".join(f"{k}={v}" for k, v in fields.items())


def runtime():
    """A fresh folder, readable by every user and writable by none but the grader, with the worker's modules.

    Returns
    -------
    str
        The folder to put on the worker's ``PYTHONPATH`` (it holds ``pca_to_vae_grader/sandboxed/``, nothing
        else).
    """
    folder = tempfile.mkdtemp(prefix="autograder-runtime-")
    top = os.path.join(folder, PACKAGE.name)
    package = os.path.join(top, "sandboxed")
    os.mkdir(top, 0o755)
    os.mkdir(package, 0o755)
    with open(os.path.join(top, "__init__.py"), "w"):  # the package around it, empty: nothing else of the grader
        pass
    os.chmod(os.path.join(top, "__init__.py"), 0o644)
    for name in WORKER_MODULES:
        shutil.copyfile(PACKAGE / "sandboxed" / name, os.path.join(package, name))
        os.chmod(os.path.join(package, name), 0o644)
    os.chmod(folder, 0o755)
    return folder


def blocked_dirs():
    """The folders a submission may not read: the repository's package, tests and grader (the pages' tests
    are in it), and wherever ``lgm``, ``nlgm`` and the grader are installed; those that exist (a Gradescope
    zip has no ``tests`` folder)."""
    import importlib.util

    dirs = {str(ROOT / name) for name in ("lgm", "nlgm", "tests", PACKAGE.name)}
    for name in ("lgm", "nlgm", PACKAGE.name):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            dirs.update(str(Path(p).resolve()) for p in spec.submodule_search_locations)
    return sorted(d for d in dirs if os.path.isdir(d))


def user_ids(user):
    """(uid, gid) of a user name or number."""
    import pwd

    try:
        entry = pwd.getpwnam(user) if not str(user).isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        if str(user).isdigit():  # a uid without an account: its own group
            return int(user), int(user)
        raise SandboxError(f"the sandbox user {user!r} does not exist: name an existing user, a uid, or a range "
                           f"of uids such as {UID_RANGE}") from None
    return entry.pw_uid, entry.pw_gid


def candidates(spec):
    """The (uid, gid) pairs ``--sandbox-user`` names: a user name, a uid, or a range ``FIRST-LAST`` of uids
    (each its own group; uids that have an account are skipped, so a range never takes a real user's)."""
    import pwd

    found = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", str(spec))
    if not found:
        return [user_ids(spec)]
    first, last = int(found[1]), int(found[2])
    if not 0 < first <= last < 2**31:
        raise SandboxError(f"the sandbox users {spec!r} are not a range FIRST-LAST of uids above 0")
    pairs = []
    for uid in range(first, last + 1):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            pairs.append((uid, uid))
    if not pairs:
        raise SandboxError(f"every uid of {spec!r} has an account: choose uids that no user has")
    return pairs


def _lock_folder():
    for parent in LOCKS:
        path = os.path.join(parent, "autograder-sandbox")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            continue
        status = os.lstat(path)
        if stat.S_ISDIR(status.st_mode) and status.st_uid == os.geteuid() and not status.st_mode & 0o077:
            return path
    raise SandboxError(f"no folder for the sandbox users' locks: {LOCKS[0]}/autograder-sandbox must be a folder "
                       "of root's with mode 700 (remove whatever is there)")


def claim_user(spec, *, wait=300.0):
    """Take a sandbox user of ``spec`` that no other grading on this machine holds, for as long as the
    returned lock (a file descriptor) stays open. Waits while all of them are busy.

    Returns
    -------
    (int, int, int)
        uid, gid, and the descriptor that holds the lock (``os.close`` it to hand the user back).
    """
    import fcntl

    pairs = candidates(spec)
    if any(uid == 0 for uid, _ in pairs):
        raise SandboxError("the sandbox user must not be root")
    folder = _lock_folder()
    start, deadline = secrets.randbelow(len(pairs)), time.monotonic() + wait
    while True:
        for i in range(len(pairs)):
            uid, gid = pairs[(start + i) % len(pairs)]
            fd = os.open(os.path.join(folder, f"uid-{uid}"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return uid, gid, fd
        if time.monotonic() > deadline:
            raise SandboxError(f"every sandbox user of {spec!r} has been busy with another grading for {wait:g} s: "
                               f"give a larger range of uids (e.g. {UID_RANGE})")
        time.sleep(0.2)


def deny_gid(name):
    """The group that denies the sandbox the folders of ``name`` (a module, or ``"pca_to_vae_grader"`` for
    the grader's own files): ``DENY_GIDS`` plus a hash of the name."""
    return DENY_GIDS + zlib.crc32(name.encode()) % 1000


def close_to_group(path, gid):
    """Give ``path`` the group ``gid`` and no group permissions: the kernel then refuses it to every process
    in that group, whatever the other permissions say (it checks the group's bits, not the others', for a
    member). Nothing changes for anyone else."""
    real = os.path.realpath(path)
    status = os.stat(real)
    if status.st_gid != gid:
        os.chown(real, -1, gid)
    if status.st_mode & 0o070 or status.st_gid != gid:
        os.chmod(real, stat.S_IMODE(status.st_mode) & ~0o070)


def fresh_workdir(ids):
    """A new folder for one worker start; with a sandbox user ``ids`` = (uid, gid), owned by it (chown
    through O_NOFOLLOW)."""
    folder = tempfile.mkdtemp(prefix="autograder-work-")
    if ids is not None:
        uid, gid = ids
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    return folder


def remove_workdir(path, identity):
    """Remove a worker's folder, also when the submission renamed it and put a link (or anything else) in
    its place: the link is removed, never followed, and the folder is found again by its inode."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        status = None
    if status is not None:
        if stat.S_ISDIR(status.st_mode):
            shutil.rmtree(path, ignore_errors=True)  # rmtree does not follow links inside it
        else:
            os.unlink(path)
        if (status.st_dev, status.st_ino) == identity:
            return
    with os.scandir(os.path.dirname(path)) as entries:
        moved = [e.path for e in entries if e.inode() == identity[1] and e.is_dir(follow_symlinks=False)
                 and e.stat(follow_symlinks=False).st_dev == identity[0]]
    for folder in moved:
        shutil.rmtree(folder, ignore_errors=True)


def environment(workdir, runtime_dir, token, *, trusted):
    """The worker's whole environment: nothing of the grader's beyond what Python needs to start."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir, "TMPDIR": workdir, "MPLCONFIGDIR": workdir, "MPLBACKEND": "Agg",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "PYTHONPATH": runtime_dir + (os.pathsep + str(ROOT) if trusted else ""),
        "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "USER": "sandbox", "LOGNAME": "sandbox",  # a uid without an account has no name to look up
        "AUTOGRADER_TOKEN": token,
    }
    if os.environ.get("LD_LIBRARY_PATH"):  # an interpreter built with a shared libpython may need it
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
    return env


def become_subreaper():
    """Make this process the subreaper of its descendants (Linux): orphans it created stay its children."""
    global _subreaper
    if _subreaper or not sys.platform.startswith("linux"):
        return _subreaper
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        _subreaper = False
    return _subreaper


# -- finding and killing processes ------------------------------------------------------------------


def _stat(pid):
    """(alive, ppid, pgid, sid) of a process (alive is False for a zombie: dead, not yet collected),
    or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            text = stream.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2:].split()
    return fields[0] not in (b"Z", b"X"), int(fields[1]), int(fields[2]), int(fields[3])


def _uids(pid):
    try:
        with open(f"/proc/{pid}/status", "rb") as stream:
            for line in stream:
                if line.startswith(b"Uid:"):
                    return {int(u) for u in line.split()[1:4]}
    except OSError:
        pass
    return set()


def _has_token(pid, token):
    try:
        with open(f"/proc/{pid}/environ", "rb") as stream:
            return f"AUTOGRADER_TOKEN={token}".encode() in stream.read().split(b"\0")
    except OSError:
        return False


def _pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()] if os.path.isdir("/proc") else []


def _kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _kill_groups(pids):
    """Kill each worker's process group (the worker leads its own session): all a system without /proc
    (macOS) allows the grader to find."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(pids):
    for pid in pids:  # orphans that the subreaper adopted are this process's children: collect them
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _user_processes(uid):
    """{pid: state} of the live processes whose real, effective or saved user is ``uid`` (zombies are gone)."""
    found = {}
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/status", "rb") as stream:
                fields = dict(line.split(b":", 1) for line in stream.read().splitlines() if b":" in line)
            state, uids = fields[b"State"].split()[0], {int(u) for u in fields[b"Uid"].split()[:3]}
        except (OSError, KeyError, ValueError, IndexError):
            continue
        if uid in uids and state not in (b"Z", b"X"):
            found[pid] = state
    return found


def _signal_of(pid, uid, sig):
    """Send ``sig`` to ``pid`` if it is still a process of ``uid`` (through a pidfd where the system has
    one, so a pid that a new process took in between is never signalled)."""
    fd = None
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError) as error:
        if isinstance(error, ProcessLookupError):
            return
    try:
        if uid in _uids(pid):
            if fd is None:
                os.kill(pid, sig)
            else:
                signal.pidfd_send_signal(fd, sig)
    except (ProcessLookupError, PermissionError):
        pass
    finally:
        if fd is not None:
            os.close(fd)


def end_user(uid, *, timeout=10.0):
    """End every process of ``uid``, as root, and wait until none is left.

    Each round stops (SIGSTOP) every process of the user that still runs; once a round finds them all
    stopped, none can fork or signal any more, and all are killed (SIGKILL). A fork bomb cannot outrun
    this, and no process of the user can signal the grader (root), which does it all itself.

    Returns
    -------
    set of int
        The processes killed.

    Raises
    ------
    SandboxError
        Processes of ``uid`` still alive after ``timeout`` seconds.
    """
    killed, rounds, deadline = set(), 0, time.monotonic() + timeout
    while found := _user_processes(uid):
        rounds += 1
        stopped = all(state in (b"T", b"t") for state in found.values())
        # A process that never stops (in the kernel's uninterruptible sleep) is killed all the same.
        sig = signal.SIGKILL if stopped or rounds > 50 else signal.SIGSTOP
        for pid in found:
            _signal_of(pid, uid, sig)
        killed |= set(found)
        if time.monotonic() > deadline:
            raise SandboxError(f"the grader could not end the processes {sorted(found)[:10]} of the sandbox user {uid}")
        time.sleep(0.001 if sig == signal.SIGSTOP else 0.005)
    return killed


_PROBE = """
import json, os, sys
out = {"error": None, "open": []}
try:
    import pca_to_vae_grader.sandboxed.worker, numpy
except BaseException as error:
    out["error"] = f"{type(error).__name__}: {error}"
for path in sys.argv[1:]:
    try:
        os.listdir(path) if os.path.isdir(path) else open(path, "rb").close()
        out["open"].append(path)
    except OSError:
        pass
print(json.dumps(out))
"""

_FIND = """
import importlib.util, json, os, sys
found = []
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        continue
    if spec is not None and spec.submodule_search_locations:
        found += [(name, p) for p in spec.submodule_search_locations]
    elif spec is not None and spec.origin and os.path.isfile(spec.origin):
        found.append((name, spec.origin))
print(json.dumps(found))
"""


def _locations(names):
    """Where the worker's Python finds each module (without importing it): [(name, path), ...]. Asked of
    that Python itself, in an isolated run, so an editable install or a .pth file counts too."""
    out = subprocess.run([sys.executable, "-I", "-c", _FIND, *names], capture_output=True, text=True, cwd="/",
                         timeout=60, check=False)
    try:
        return [(n, p) for n, p in json.loads(out.stdout) if os.path.exists(p)]
    except ValueError:
        raise SandboxError(f"the grader could not ask {sys.executable} where its modules are: "
                           f"{out.stderr.strip()[-500:]}") from None


def _blocked_for(uid, gids, path):
    """The first folder on the way to ``path`` that ``uid`` (in groups ``gids``) cannot enter, or ``path``
    itself when it cannot read it: (that path, its mode), or None when all of it is open."""
    real = Path(os.path.realpath(path))
    for step in [*reversed(real.parents), real]:
        try:
            status = os.stat(step)
        except OSError:
            return None
        shift = 6 if status.st_uid == uid else 3 if status.st_gid in gids else 0
        need = 0o1 if stat.S_ISDIR(status.st_mode) else 0o4
        if not (status.st_mode >> shift) & need:
            return str(step), stat.S_IMODE(status.st_mode)
    return None


class Sandbox:
    """Where and how workers run, and how they end.

    With a sandbox user (the grader must be root), the sandbox first takes a user of ``user`` that no
    other grading on this machine holds (:func:`claim_user`), closes to it what it must not read (the
    package, the tests and the grader, and the modules the page bans: :func:`close_to_group`), and checks
    that this user can run the worker but not read those; if not, it raises :class:`SandboxError` with
    what is wrong and the fix, before any submission runs.

    Parameters
    ----------
    user : str, optional
        The sandbox user: a name, a uid, or a range ``FIRST-LAST`` of uids (one per grading at a time).
        Without one the worker runs as the grader's user.
    limits : Limits
    trusted : bool
        The reference solutions: they may import the package, which must then be on the path.
    banned : tuple of str
        Modules this page's submission may not import either (see ``guard.install``).
    """

    def __init__(self, user=None, limits=Limits(), *, trusted=False, banned=()):
        self.user = user
        self.banned = tuple(banned)
        self.limits = limits
        self.trusted = trusted
        self.ids, self.groups, self.closed, self._lock = None, [], [], None
        self._live = {}  # pid -> (token, workdir, its (device, inode)) of the workers started and not yet swept
        self.runtime = runtime()
        self.blocked = [] if trusted else blocked_dirs()
        if user is None:
            return
        if os.geteuid() != 0:
            raise SandboxError(f"running the submission as {user!r} needs the grader to run as root")
        try:
            uid, gid, self._lock = claim_user(user)
            self.ids = uid, gid
            end_user(uid)  # whatever an earlier grading that died left behind
            if not trusted:
                self._close(BLOCKED_MODULES + self.banned)
            self._check()
        except BaseException:
            self.close()
            raise

    def _close(self, names):
        """Close the folders of ``names`` and the grader's own to this sandbox (a group it runs in)."""
        # The grader itself goes too wherever the worker's Python would find it (an installed copy, with
        # the pages' tests): the worker imports only its private copy of the sandboxed modules (runtime()).
        closed = [(PACKAGE.name, d) for d in self.blocked] + _locations((*names, PACKAGE.name))
        for name, path in closed:
            try:
                close_to_group(path, deny_gid(name))
            except OSError as error:
                raise SandboxError(f"the grader could not close {path} to the sandbox user ({error})") from None
        self.groups = sorted({deny_gid(name) for name, _ in closed} | {deny_gid(n) for n in names})
        self.closed = [path for _, path in closed]

    def _check(self):
        """Run the worker's imports as the sandbox user; raise SandboxError with the fix if it cannot."""
        uid, gid = self.ids
        workdir = fresh_workdir(self.ids)
        identity = os.lstat(workdir)
        try:
            process = subprocess.run([sys.executable, "-s", "-c", _PROBE, *self.closed],
                                     capture_output=True, text=True, cwd=workdir, timeout=120, check=False,
                                     env=environment(workdir, self.runtime, "probe", trusted=self.trusted),
                                     user=uid, group=gid, extra_groups=self.groups)
            report = json.loads(process.stdout.strip().splitlines()[-1]) if process.stdout.strip() else None
        except (OSError, ValueError, subprocess.SubprocessError) as error:
            process, report = None, {"error": str(error), "open": []}
        finally:
            end_user(uid)
            remove_workdir(workdir, (identity.st_dev, identity.st_ino))
        if report is None:
            report = {"error": (process.stderr.strip().splitlines() or ["no reply"])[-1], "open": []}
        if report["error"] is not None:
            import importlib.util

            numpy = importlib.util.find_spec("numpy")
            for what, path in (("the grader's Python", sys.executable), ("the grader's Python",
                               os.path.realpath(sys.executable)), ("the worker's modules", self.runtime),
                               ("numpy", numpy.origin if numpy else None)):
                where = _blocked_for(uid, {gid, *self.groups}, path) if path else None
                if where is not None:
                    raise SandboxError(
                        f"the sandbox user (uid {uid}) cannot reach {what} ({path}): it cannot enter or read "
                        f"{where[0]} (mode {where[1]:o}). Install the grader where every user can read it (for "
                        "example a virtual environment under /opt or /srv, then chmod -R a+rX on it), or open "
                        f"that folder to other users (chmod o+x {where[0]}), and grade again")
            raise SandboxError(f"the sandbox user (uid {uid}) cannot run {sys.executable} with numpy: "
                               f"{report['error']}")
        if report["open"]:
            raise SandboxError(f"the sandbox user (uid {uid}) can still read {', '.join(report['open'][:3])}, which "
                               "the grader closed to it (a file system without group permissions?): the submission "
                               "could import the package or a module the page bans")

    def popen_arguments(self, token):
        """What ``subprocess.Popen`` needs to start one worker: (argv, keyword arguments, workdir)."""
        if self.ids is not None:
            end_user(self.ids[0])  # before each worker too: nothing of an earlier one may meet it
        workdir = fresh_workdir(self.ids)
        env = environment(workdir, self.runtime, token, trusted=self.trusted)
        env["AUTOGRADER_LIMITS"] = self.limits.encode(sandbox_user=self.user is not None)
        env["AUTOGRADER_BLOCKED"] = "" if self.trusted else os.pathsep.join(self.blocked)
        env["AUTOGRADER_BLOCKED_MODULES"] = "" if self.trusted else ",".join(BLOCKED_MODULES)
        env["AUTOGRADER_BANNED_MODULES"] = "" if self.trusted else ",".join(self.banned)
        argv = [sys.executable, "-s", "-m", f"{PACKAGE.name}.sandboxed.worker"]
        kwargs = dict(cwd=workdir, env=env, start_new_session=True)
        if self.ids is not None:
            kwargs.update(user=self.ids[0], group=self.ids[1], extra_groups=self.groups, umask=0o077)
        return argv, kwargs, workdir

    def started(self, pid, token, workdir):
        status = os.lstat(workdir)
        self._live[pid] = (token, workdir, (status.st_dev, status.st_ino))
        _LIVE.add(pid)

    def _targets(self, worker_pids, tokens):
        """The processes that belong to the sandbox now."""
        me = os.getpid()
        table, zombies = {}, []
        for pid in _pids():
            if pid == me:
                continue
            stat = _stat(pid)
            if stat is None:
                continue
            if stat[0]:
                table[pid] = stat[1:]
            elif stat[1] == me and pid not in _LIVE:
                zombies.append(pid)  # an orphan this process adopted (as subreaper) that has died
        _reap(zombies)
        sessions = set(worker_pids)  # the worker is the leader of its own session and process group
        found = {pid for pid, (ppid, pgid, sid) in table.items()
                 if pid in sessions or sid in sessions or pgid in sessions or any(_has_token(pid, t) for t in tokens)}
        if _subreaper:  # orphans adopted by the grader: any child of the grader that is not a live worker
            live = _LIVE - set(worker_pids)
            found |= {pid for pid, (ppid, _, _) in table.items() if ppid == me and pid not in live}
        grew = True
        while grew:  # and every descendant of those
            more = {pid for pid, (ppid, _, _) in table.items() if ppid in found} - found
            grew = bool(more)
            found |= more
        return found

    def sweep(self, worker_pids=None, *, timeout=10.0):
        """Kill the given workers (default: all of them) and every process of theirs; wait until none is left.

        Returns
        -------
        int
            How many processes besides the workers were killed (left behind by the submission).
        """
        worker_pids = list(self._live) if worker_pids is None else list(worker_pids)
        tokens = [self._live[p][0] for p in worker_pids if p in self._live]
        extra, deadline = set(), time.monotonic() + timeout
        if self.ids is not None:  # every process of the sandbox user, ended by the grader itself
            extra = end_user(self.ids[0], timeout=timeout) - set(worker_pids)
        elif os.name == "posix":  # on Windows the Student kills its worker itself; there is no sandbox to sweep
            _kill_groups(worker_pids)
        while os.name == "posix" and self.ids is None:
            targets = self._targets(worker_pids, tokens)
            _kill(targets)
            extra |= targets - set(worker_pids)
            time.sleep(0.005 if targets else 0)
            _reap(targets - set(worker_pids))  # the workers themselves are collected by their Popen
            if not targets:
                break
            if time.monotonic() > deadline:
                raise SandboxError(f"the grader could not end the submission's processes {sorted(targets)[:10]}")
        for pid in worker_pids:
            _LIVE.discard(pid)
            _, workdir, identity = self._live.pop(pid, (None, None, None))
            if workdir:
                remove_workdir(workdir, identity)
        return len(extra)

    def close(self):
        """End every process of the sandbox, remove its folders, and hand its user back."""
        try:
            self.sweep()
        finally:
            shutil.rmtree(self.runtime, ignore_errors=True)
            if self._lock is not None:
                os.close(self._lock)
                self._lock = None


def check(user):
    """Whether ``user`` (a name, a uid or a range of uids) can serve as the sandbox here: None if it can,
    else what is wrong and the fix, in one message (grade nothing then)."""
    try:
        Sandbox(user).close()
    except SandboxError as error:
        return str(error)
    return None
