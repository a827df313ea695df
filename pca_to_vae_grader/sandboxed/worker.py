"""The process that runs a submission: ``python -m pca_to_vae_grader.sandboxed.worker``. Student code runs only here.

Protocol: the grader writes one JSON message per line to the worker's standard input and reads one
reply per line from its standard output (:mod:`pca_to_vae_grader.sandboxed.codec`, no pickle). Before any
student code runs, the worker forbids itself new privileges (no setuid program can give the sandbox user
another user or group), sets its resource limits (``AUTOGRADER_LIMITS``), installs
:mod:`pca_to_vae_grader.sandboxed.guard`
(no ``lgm``, ``nlgm`` or reference solutions, no other processes, no writing outside its folder),
moves the protocol to private file descriptors and points file descriptors 0, 1, 2 (and
``sys.stdout``/``sys.stderr``) at the output pipe the grader gave it as standard error (the grader
keeps the first part of it and drops the rest), so whatever the submission prints cannot be mistaken
for a reply. The worker is told nothing about where the results go. Each request carries an ``id`` and a random
``token`` that the reply must echo. A reply only ever carries the value a function returned: the
grader compares it with its own reference, so nothing a submission prints, writes or sends can
raise its score beyond what its functions compute.

Requests:
``{"op": "load", "cells": [...]}``
    run the definitions of the cells (:func:`pca_to_vae_grader.sandboxed.submission.definitions`);
    reply with the names defined and one line per statement that failed.
``{"op": "call", "name": ..., "args": [...], "kwargs": {...}}``
    call one function of the submission and reply with its return value or what went wrong.
"""
import builtins
import os
import sys
import traceback

from pca_to_vae_grader.sandboxed import codec, guard
from pca_to_vae_grader.sandboxed.submission import definitions

try:
    import resource
except ImportError:  # Windows: no resource limits (the time limits and the guard still hold)
    resource = None
_LIMITS = {} if resource is None else {
    "as": resource.RLIMIT_AS, "cpu": resource.RLIMIT_CPU, "fsize": resource.RLIMIT_FSIZE,
    "nproc": getattr(resource, "RLIMIT_NPROC", None)}


def _student_traceback(error):
    """The traceback lines inside the submission's cells (not the worker's own frames)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith("<cell")]
    lines = [f'  {f.filename[1:-1]}, line {f.lineno}, in {f.name}' for f in frames[-6:]]
    return "\n".join(lines)


def _describe(error):
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= 2000 else text[:2000] + " ..."


def _tasks_of(uid):
    """How many processes and threads ``uid`` runs now (what RLIMIT_NPROC counts)."""
    count = 0
    for name in (n for n in os.listdir("/proc") if n.isdigit()) if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{name}/status", "rb") as stream:
                fields = dict(line.split(b":", 1) for line in stream if b":" in line)
        except (OSError, ValueError):
            continue
        if int(fields.get(b"Uid", b"-1 ").split()[0]) == uid:
            count += int(fields.get(b"Threads", b"1").strip())
    return count


def set_limits(text):
    """Apply ``name=value,...`` resource limits (soft and hard: the submission cannot raise them again)."""
    for item in filter(None, text.split(",")):
        name, value = item.split("=")
        if name == "nproc_more":
            if _LIMITS.get("nproc") is None or os.geteuid() == 0:
                continue  # root is not held to RLIMIT_NPROC
            name, value = "nproc", _tasks_of(os.getuid()) + int(value)
        if _LIMITS.get(name) is not None:
            value = int(value)
            soft, hard = resource.getrlimit(_LIMITS[name])
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(_LIMITS[name], (value, value))


MAX_PROBLEMS = 20
"""Load problems reported one by one; the rest are counted."""


def load(namespace, cells):
    statements, problems = definitions(cells)
    failed = 0
    for number, module in statements:
        try:
            exec(compile(module, f"<cell {number}>", "exec"), namespace)
        except BaseException as error:  # noqa: B036 - SystemExit and KeyboardInterrupt included
            failed += 1
            if failed <= MAX_PROBLEMS:
                line = module.body[0].lineno
                problems.append(f"code cell {number}, line {line} raised {_describe(error)}; the grader skipped it")
    if failed > MAX_PROBLEMS:
        problems.append(f"{failed - MAX_PROBLEMS} more statements raised errors; the grader skipped them too")
    defined = sorted(k for k, v in namespace.items() if callable(v) and getattr(v, "__module__", None) == "submission")
    return {"status": "ok", "defined": defined, "problems": problems, "imports": list(_RULES.refused)}


def call(namespace, name, args, kwargs):
    function = namespace.get(name)
    if function is None or not callable(function):
        return {"status": "missing"}
    try:
        value = function(*codec.from_jsonable(args), **codec.from_jsonable(kwargs))
    except NotImplementedError:
        return {"status": "not-implemented"}
    except BaseException as error:  # noqa: B036 - a sys.exit() inside a function is its failure
        return {"status": "error", "error": _describe(error), "traceback": _student_traceback(error)}
    try:
        return {"status": "ok", "value": codec.to_jsonable(value)}
    except codec.CodecError as error:
        return {"status": "bad-return", "error": f"it returned {error}"}
    except Exception as error:  # the returned object's own code failed while it was read (e.g. a fake tensor)
        return {"status": "bad-return", "error": f"reading the value it returned raised {_describe(error)}"}


_RULES = None


def _locations(names):
    """Where this interpreter would find each blocked module (without importing it): an installed or
    editable copy of the package is closed too, whatever path or finder leads to it."""
    import importlib.util

    found = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, AttributeError, OSError):  # OSError: a folder closed to the sandbox
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            found += [str(p) for p in spec.submodule_search_locations]
        elif spec.origin and os.path.isfile(spec.origin):
            found.append(spec.origin)
    return found


def no_new_privileges():
    """From now on no program this process or its children run gains privileges (a setuid program such as
    ``newgrp`` or ``su`` cannot give the sandbox user back a group or another user; Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        except (OSError, AttributeError):
            pass


def main():
    global _RULES
    no_new_privileges()
    set_limits(os.environ.pop("AUTOGRADER_LIMITS", ""))
    blocked = [d for d in os.environ.pop("AUTOGRADER_BLOCKED", "").split(os.pathsep) if d]
    modules = [m for m in os.environ.pop("AUTOGRADER_BLOCKED_MODULES", "").split(",") if m]
    banned = [m for m in os.environ.pop("AUTOGRADER_BANNED_MODULES", "").split(",") if m]
    # The protocol moves to private descriptors; 0, 1, 2 now belong to the submission.
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)
    sys.stdout = sys.stderr = open(2, "w", buffering=1, closefd=False, encoding="utf-8", errors="replace")
    _RULES = guard.install(modules, blocked + _locations(modules), [os.getcwd()], banned)
    namespace = {"__name__": "submission", "__builtins__": builtins}
    for line in requests:
        request = {}
        try:
            request = codec.loads(line)
            if request.get("op") == "load":
                reply = load(namespace, request["cells"])
            elif request.get("op") == "call":
                reply = call(namespace, request["name"], request["args"], request["kwargs"])
            else:
                reply = {"status": "protocol-error", "error": f"unknown op {request.get('op')!r}"}
        except Exception as error:  # a malformed request is the grader's bug: report it, keep serving
            reply = {"status": "protocol-error", "error": _describe(error)}
        reply["id"], reply["token"] = request.get("id"), request.get("token")
        reply["imports"] = list(_RULES.refused)
        sys.stdout.flush()
        replies.write(codec.dumps(reply))
        replies.flush()


if __name__ == "__main__":
    main()
