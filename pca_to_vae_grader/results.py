"""Scores in Gradescope's ``results.json`` format, and the short table of points shown in the terminal.

The format (https://gradescope-autograders.readthedocs.io/en/latest/specs/): a top-level ``score``,
``output`` and ``tests``, each test with ``name``, ``score``, ``max_score``, ``status`` and ``output``.
The score of a test is its full points when it passed and 0 otherwise; the grader computes it from
the outcome of its own comparison, never from anything the submission printed.
"""
import json
import os
import re
import tempfile
from dataclasses import dataclass, field

QUOTE = "> "
"""How every line of text that comes from the submission's process begins (:func:`from_submission`)."""
MAX_TEST_OUTPUT = 8_000
"""Characters of one test's message kept in the results."""
MAX_OUTPUT = 200_000
"""Characters of all the messages together (the notes and every test's) kept in the results."""


def from_submission(text, limit=2000):
    """Text that the submission's process produced (an error message, a traceback, a load problem), marked
    as such: cut to ``limit`` characters, control characters replaced, and every line quoted with ``"> "``,
    so that nothing it says (a forged "Total: 24 / 24 points") can pass for the grader's own words."""
    text = str(text)
    kept = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "?", text[:limit])
    quoted = "\n".join(QUOTE + line for line in (kept.split("\n") or [""]))
    return quoted + (f"\n[{len(text) - limit} more characters of it cut]" if len(text) > limit else "")


def _cut(text, limit):
    """``text`` with at most ``limit`` characters, saying how many were cut."""
    if len(text) <= limit:
        return text, False
    return text[:limit] + f"\n[... {len(text) - limit} more characters cut]", True


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
        """The results as Gradescope reads them. Every message is capped (``MAX_TEST_OUTPUT`` per test,
        ``MAX_OUTPUT`` in all), and the top says once what was cut and what quoted text is."""
        left, cut = MAX_OUTPUT, 0
        notes, cut_here = _cut("\n".join(self.notes), MAX_OUTPUT // 4)
        left -= len(notes)
        cut += cut_here
        outputs = []
        for t in self.tests:
            text, cut_here = _cut(t.output, min(MAX_TEST_OUTPUT, max(left, 0)))
            if not text and t.output:
                text = "[message cut: the results keep a limited amount of text in all]"
            left -= len(text)
            cut += cut_here
            outputs.append(text)
        about = []
        if any(line.startswith(QUOTE) for text in [notes, *outputs] for line in text.split("\n")):
            about.append(f"Lines that start with '{QUOTE.strip()}' quote the submission's own process (its error "
                         "messages, as it wrote them); they are not the grader's words.")
        if cut:
            about.append(f"The grader cut {cut} message(s) to keep the results short ({MAX_TEST_OUTPUT} characters "
                         f"per test, {MAX_OUTPUT} in all).")
        total = [f"Total: {self.score:g} / {self.max_score:g} points."] if self.tests else []
        return {
            "score": self.score,
            "max_score": self.max_score,
            "output": "\n".join([notes] * bool(notes) + about + total),
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": [
                {
                    "name": t.label or t.name,
                    "score": t.score,
                    "max_score": t.max_score,
                    "status": "passed" if t.passed else "failed",
                    "output": output,
                    "tags": [t.page],
                    "extra_data": {"test": t.name, "function": t.function},  # pytest's name (-k NAME reruns it)
                    "visibility": t.visibility,
                }
                for t, output in zip(self.tests, outputs)
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

    @staticmethod
    def refuse(path, reason):
        """Write (if ``path``) a results file that grades nothing and says why: the sandbox cannot be set up."""
        if path:
            refusal = Results(notes=[f"The autograder refused to grade this submission: {reason}. "
                                     "Please tell your instructor."])
            refusal.write(path)

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
