"""The roll-up of a class: grade a folder of submissions in parallel, in the sandbox, into one CSV.

``python -m pca_to_vae_grader rollup SUBMISSIONS --page gaussians --out grades.csv``

``SUBMISSIONS`` holds one entry per student: a file (``.ipynb``, ``.md`` or ``.py``, any name; the student is
its name without the suffix) for one page, or a folder (the student is the folder's name) holding
``<page>.ipynb`` per page, or its only notebook. Each (student, page) is one grading run of the page's tests
(``pytest ... --submission ... --results ...`` in its own process, as Gradescope runs them), ``jobs`` at
a time. The CSV has a row per student and page: ``student, page``, the points of each exercise (the
page's functions; empty for another page's), ``total`` and ``max_score``. A short report lists what could
not be graded and why (no results, an unreadable file, several candidates, a crash of the grader).
"""
import csv
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pca_to_vae_grader import pages as registry
from pca_to_vae_grader.course import Course
from pca_to_vae_grader.sandboxed.submission import SUFFIXES


@dataclass
class Grade:
    """One student's grade on one page."""

    student: str
    page: str
    submission: Path
    points: dict = field(default_factory=dict)  # function -> points
    total: float = 0.0
    max_score: float = 0.0
    problem: str = ""  # why it was not graded, or what went wrong while loading it


def entries(folder, page_names):
    """``[(student, page, submission path)]`` for a folder of submissions, in the order of the names.

    Raises
    ------
    ValueError
        One file per student, but not exactly one page; or a folder without submissions.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of submissions")
    found = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            found += [(path.name, page, path) for page in page_names]
        elif path.suffix in SUFFIXES:
            if len(page_names) != 1:
                raise ValueError(f"{folder} holds one file per student ({path.name}): name the page to grade them "
                                 f"against (--page), one of {', '.join(page_names)}")
            found.append((path.stem, page_names[0], path))
    stems = [student for student, _, path in found if path.is_file()]
    found = [(path.name if path.is_file() and stems.count(student) > 1 else student, page, path)
             for student, page, path in found]  # alice.py and alice.ipynb: two entries, named in full
    if not found:
        raise ValueError(f"{folder} holds no submissions ({', '.join(SUFFIXES)} files, or a folder per student)")
    return found


def grade_one(student, page, submission, *, course=None, sandbox_user=None, time_limit=10.0, timeout=900):
    """Grade one submission in its own grading process; return a :class:`Grade`."""
    info = registry.page(page)
    grade = Grade(student, page, Path(submission))
    with tempfile.TemporaryDirectory(prefix="rollup-") as tmp:
        results = Path(tmp) / "results.json"
        command = [sys.executable, "-m", "pytest", *info.pytest_arguments(), "--submission", str(submission),
                   "--results", str(results), "--time-limit", f"{time_limit:g}"]
        command += ["--course", str(course)] if course else []
        command += ["--sandbox-user", sandbox_user] if sandbox_user else []
        try:
            process = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp,
                                     env=registry.pinned_environment(os.environ))
        except subprocess.TimeoutExpired:
            grade.problem = f"the grading took more than {timeout} s and was stopped"
            return grade
        if not results.is_file():
            tail = (process.stdout + process.stderr).strip().splitlines()[-3:]
            grade.problem = "the grader wrote no results: " + " / ".join(tail)
            return grade
        data = json.loads(results.read_text())
    for test in data.get("tests", []):
        function = test.get("extra_data", {}).get("function") or "?"
        grade.points[function] = grade.points.get(function, 0.0) + float(test["score"])
        grade.max_score += float(test["max_score"])
    grade.total = sum(grade.points.values())
    outputs = [str(test.get("output", "")) for test in data.get("tests", [])]
    unread = [o for o in outputs if o.startswith("The grader could not read your submission")]
    if not outputs:
        grade.problem = "no test ran: " + str(data.get("output", ""))[-500:].replace("\n", " / ")
    elif len(unread) == len(outputs):  # the file itself: missing, unreadable, or one of several candidates
        grade.problem = unread[0].removeprefix("The grader could not read your submission: ")
    return grade


def rollup(folder, page_names, out, *, course=None, jobs=2, sandbox_user=None, time_limit=10.0):
    """Grade every submission of ``folder`` against ``page_names``; write the CSV ``out`` and its report.

    Returns
    -------
    grades : list of Grade
    report : list of str
        The report's lines (also written to ``<out>`` with the suffix ``-report.txt``).
    """
    if course is not None:
        selected = Course.read(course)
        missing = [p for p in page_names if not selected.includes(p)]
        if missing:
            raise ValueError(f"the course file does not list the page(s) {', '.join(missing)}")
    work = entries(folder, page_names)
    with ThreadPoolExecutor(max(1, int(jobs))) as pool:
        grades = list(pool.map(lambda e: grade_one(*e, course=course, sandbox_user=sandbox_user,
                                                   time_limit=time_limit), work))
    functions = [f for page in page_names for f in registry.page(page).exercises]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["student", "page", *functions, "total", "max_score"])
        for g in grades:
            own = registry.page(g.page).exercises
            writer.writerow([g.student, g.page, *(_number(g.points.get(f, 0.0)) if f in own else "" for f in functions),
                             _number(g.total), _number(g.max_score)])
    failed = [g for g in grades if g.problem]
    report = [f"Graded {len(grades)} submission(s) of {len({g.student for g in grades})} student(s) "
              f"on {', '.join(page_names)}: {out}",
              f"{len(failed)} could not be graded fully:" if failed else "Every submission was graded."]
    report += [f"  {g.student} ({g.page}, {g.submission.name}): {g.problem}" for g in failed]
    Path(f"{out.with_suffix('')}-report.txt").write_text("\n".join(report) + "\n", encoding="utf-8")
    return grades, report


def _number(x):
    return f"{x:g}"
