"""The worker's sandbox, on the grader's side: its folders, its environment, its limits, and its end.

Each start of a worker gets a fresh temporary folder created by the grader (``mkdtemp``, which no
other user can have prepared or swapped); with a sandbox user, only that new folder is handed to the
user, through a file descriptor opened with ``O_NOFOLLOW`` (never a ``chown`` of a path, which a
submission could have replaced by a link). The worker runs ``python -m pca_to_vae_grader.sandboxed.worker`` from a
private copy of the worker's modules (:func:`runtime`), so neither the repository nor the grader's
files are on its path, with a minimal environment (never the grader's), and it sets its own resource
limits before any student code runs (:class:`Limits`).

After a worker, :func:`Sandbox.sweep` kills every process of the sandbox and waits until none is left:

- with a sandbox user (Gradescope): every process whose real, effective or saved user is that user
  (``kill(-1)`` from a helper running as the user, then a scan of ``/proc`` until none remains), so a
  process that left the worker's session (``setsid``, a double fork) goes too. Use a user that runs
  nothing else, and grade one submission at a time per sandbox user;
- without one (a laptop): the worker's session and process group, every process that carries the
  worker's random token in its environment, and their descendants; and, when the grader is a
  subreaper (:func:`become_subreaper`, in a grading run), every other child of the grader, which is
  where an orphan that left the session ends up. A process that cleared its environment, left the
  session and escaped the grader's process tree (``ctypes`` can do all three) is not found: local
  grading without a sandbox user protects against accidents, not attacks. Where there is no
  ``/proc`` (macOS), only the worker's process group is killed; on Windows, only the worker.
"""
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
WORKER_MODULES = ("__init__.py", "worker.py", "codec.py", "submission.py", "guard.py")
"""What the worker runs (the ``sandboxed`` subpackage): copied into a private folder, away from the package and
the tests."""
BLOCKED_MODULES = ("lgm", "nlgm", "solutions", "mistakes", "tests", "conftest")

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
    """The folders a submission may not read: the repository's package, tests and grader, and wherever
    ``lgm`` and ``nlgm`` are installed."""
    import importlib.util

    dirs = {str(ROOT / name) for name in ("lgm", "nlgm", "tests", PACKAGE.name)}
    for name in ("lgm", "nlgm"):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            dirs.update(str(Path(p).resolve()) for p in spec.submodule_search_locations)
    return sorted(dirs)


def user_ids(user):
    """(uid, gid) of a user name or number."""
    import pwd

    entry = pwd.getpwnam(user) if not str(user).isdigit() else pwd.getpwuid(int(user))
    return entry.pw_uid, entry.pw_gid


def fresh_workdir(user):
    """A new folder for one worker start; with a sandbox user, owned by it (chown through O_NOFOLLOW)."""
    folder = tempfile.mkdtemp(prefix="autograder-work-")
    if user is not None:
        uid, gid = user_ids(user)
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


def _kill_as(uid, gid):
    """Send SIGKILL to every process of ``uid`` at once: kill(-1) from a process that runs as that user
    (the kernel signals all of them in one call, so a fork bomb cannot outrun it)."""
    import subprocess

    subprocess.run([sys.executable, "-S", "-c", "import os; os.kill(-1, 9)"], user=uid, group=gid,
                   extra_groups=[], env={}, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)


class Sandbox:
    """Where and how workers run, and how they end.

    Parameters
    ----------
    user : str, optional
        The sandbox user (the grader must be root). Without one the worker runs as the grader's user.
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
        self.ids = user_ids(user) if user is not None else None
        if self.ids is not None and os.geteuid() != 0:
            raise RuntimeError(f"running the submission as {user!r} needs the grader to run as root")
        if self.ids is not None and self.ids[0] == 0:
            raise RuntimeError("the sandbox user must not be root")
        self.runtime = runtime()
        self.blocked = [] if trusted else blocked_dirs()
        self._live = {}  # pid -> (token, workdir, its (device, inode)) of the workers started and not yet swept

    def popen_arguments(self, token):
        """What ``subprocess.Popen`` needs to start one worker: (argv, keyword arguments, workdir)."""
        workdir = fresh_workdir(self.user)
        env = environment(workdir, self.runtime, token, trusted=self.trusted)
        env["AUTOGRADER_LIMITS"] = self.limits.encode(sandbox_user=self.user is not None)
        env["AUTOGRADER_BLOCKED"] = "" if self.trusted else os.pathsep.join(self.blocked)
        env["AUTOGRADER_BLOCKED_MODULES"] = "" if self.trusted else ",".join(BLOCKED_MODULES)
        env["AUTOGRADER_BANNED_MODULES"] = "" if self.trusted else ",".join(self.banned)
        argv = [sys.executable, "-s", "-m", f"{PACKAGE.name}.sandboxed.worker"]
        kwargs = dict(cwd=workdir, env=env, start_new_session=True)
        if self.ids is not None:
            kwargs.update(user=self.ids[0], group=self.ids[1], extra_groups=[])
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
        if self.ids is not None:
            uid = self.ids[0]
            return {pid for pid in table if uid in _uids(pid)}
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
        if os.name == "posix":  # on Windows the Student kills its worker itself; there is no sandbox to sweep
            _kill_groups(worker_pids)
        while os.name == "posix":
            if self.ids is not None:
                _kill_as(*self.ids)
            targets = self._targets(worker_pids, tokens)
            _kill(targets)
            extra |= targets - set(worker_pids)
            time.sleep(0.005 if targets else 0)
            _reap(targets - set(worker_pids))  # the workers themselves are collected by their Popen
            if not targets:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the grader could not end the submission's processes {sorted(targets)[:10]}")
        for pid in worker_pids:
            _LIVE.discard(pid)
            _, workdir, identity = self._live.pop(pid, (None, None, None))
            if workdir:
                remove_workdir(workdir, identity)
        return len(extra)

    def close(self):
        self.sweep()
        shutil.rmtree(self.runtime, ignore_errors=True)
