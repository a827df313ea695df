"""Scores in Gradescope's ``results.json`` format, and the short table of points shown in the terminal.

The format (https://gradescope-autograders.readthedocs.io/en/latest/specs/): a top-level ``score``,
``output`` and ``tests``, each test with ``name``, ``score``, ``max_score``, ``status`` and ``output``.
The score of a test is its full points when it passed and 0 otherwise; the grader computes it from
the outcome of its own comparison, never from anything the submission printed.
"""
import json
import os
import tempfile
from dataclasses import dataclass, field


@dataclass
class TestResult:
    name: str
    page: str
    max_score: float
    passed: bool = False
    output: str = ""
    label: str = ""  # as the book names it: "Exercise 2.2 (kl_gauss): matches reference [0]"
    function: str = ""  # the exercise's function
    visibility: str = "visible"  # Gradescope's: visible, hidden, after_due_date, after_published

    @property
    def score(self):
        return self.max_score if self.passed else 0.0


@dataclass
class Results:
    tests: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # top-level lines: how the submission loaded

    @property
    def score(self):
        return sum(t.score for t in self.tests)

    @property
    def max_score(self):
        return sum(t.max_score for t in self.tests)

    def to_gradescope(self):
        return {
            "score": self.score,
            "max_score": self.max_score,
            "output": "\n".join(self.notes + [f"Total: {self.score:g} / {self.max_score:g} points."]),
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": [
                {
                    "name": t.label or t.name,
                    "score": t.score,
                    "max_score": t.max_score,
                    "status": "passed" if t.passed else "failed",
                    "output": t.output,
                    "tags": [t.page],
                    "extra_data": {"test": t.name, "function": t.function},  # pytest's name (-k NAME reruns it)
                    "visibility": t.visibility,
                }
                for t in self.tests
            ],
        }

    def write(self, path):
        """Write the file in one step: a new file in the same folder, then renamed over ``path`` (so a link
        or a file someone put at ``path`` is replaced, never written through)."""
        folder = os.path.dirname(os.path.abspath(path))
        fd, temporary = tempfile.mkstemp(prefix=".results-", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                json.dump(self.to_gradescope(), stream, indent=2)
                stream.write("\n")
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise

    def table(self):
        """The points per test as lines of text: name, points, a mark for passed or failed."""
        width = max([len(t.label or t.name) for t in self.tests] + [10])
        several = len({t.page for t in self.tests}) > 1
        if several:
            width += max(len(t.page) for t in self.tests) + 2
        lines = [f"{'test':<{width}}  {'points':>9}"]
        for t in self.tests:
            name = f"{t.page}: {t.label or t.name}" if several else (t.label or t.name)
            lines.append(f"{name:<{width}}  {t.score:>4g} / {t.max_score:<3g} {'ok' if t.passed else 'FAILED'}")
        lines.append(f"{'total':<{width}}  {self.score:>4g} / {self.max_score:<3g}")
        return lines
