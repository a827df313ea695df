"""The grader's commands: grade a saved notebook, build the Gradescope zips, list the pages.

``python -m pca_to_vae_grader grade PAGE SUBMISSION [--results FILE]``
    grade a saved notebook (``.ipynb``, MyST ``.md`` or ``.py``) of page PAGE in the sandbox and print
    the points table; no clone of the repository needed.
``python -m pca_to_vae_grader build-zip [PAGE ...] [--out DIR] [--time-limit S]``
    build one Gradescope zip per exercise page (all pages without PAGE).
``python -m pca_to_vae_grader rollup SUBMISSIONS [--page PAGE ...] --out grades.csv [--course FILE] [--jobs N]``
    grade a folder of submissions (a file or a folder per student) in parallel, in the sandbox, into one CSV
    and a report of what could not be graded (:mod:`pca_to_vae_grader.rollup`).
``python -m pca_to_vae_grader pages``
    the exercise pages, one per line (the Makefile reads them).
"""
import argparse
import os
import subprocess
import sys

from pca_to_vae_grader import pages
from pca_to_vae_grader.course import Course


def grade_command(page, submission, *, results=None, extra=()):
    """Run the page's tests on ``submission`` in the sandbox, in a pytest process of their own whose configuration
    is pinned (:func:`pca_to_vae_grader.pages.pinned_environment`), as the roll-up does; return pytest's exit code."""
    args = [*pages.page(page).pytest_arguments(), "--submission", str(submission),
            *(["--results", str(results)] if results else []), *extra]
    return subprocess.run([sys.executable, "-m", "pytest", *args], env=pages.pinned_environment(os.environ)).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pca_to_vae_grader", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="grade a saved notebook of an exercise page, in the sandbox")
    grade.add_argument("page", help=f"the exercise page: one of {', '.join(pages.PAGES)}")
    grade.add_argument("submission", help="the saved notebook (.ipynb), MyST notebook (.md) or .py file")
    grade.add_argument("--results", default=None, help="also write the scores to this file (Gradescope's format)")
    build = commands.add_parser("build-zip", help="build the Gradescope autograder zip of exercise pages")
    build.add_argument("pages", nargs="*", help=f"pages to build (default: all of {', '.join(pages.PAGES)})")
    build.add_argument("--out", default="dist/autograder", help="folder for the zips (default: dist/autograder)")
    build.add_argument("--time-limit", type=float, default=10.0, help="seconds the submission's code may run in one test")
    build.add_argument("--course", default=None, help="a course file (TOML): its pages, points and visibility")
    roll = commands.add_parser("rollup", help="grade a folder of submissions into one CSV")
    roll.add_argument("submissions", help="a folder: one file per student (any name), or one folder per student")
    roll.add_argument("--page", action="append", default=None,
                      help="a page to grade (repeat for several; default: the course's pages, or all)")
    roll.add_argument("--out", default="grades.csv", help="the CSV to write (default: grades.csv)")
    roll.add_argument("--course", default=None, help="a course file (TOML): its pages, points and visibility")
    roll.add_argument("--jobs", type=int, default=2, help="gradings at once (default: 2)")
    roll.add_argument("--sandbox-user", default=None, help="run each submission as this user (needs root)")
    roll.add_argument("--time-limit", type=float, default=10.0, help="seconds the submission's code may run in one test")
    commands.add_parser("pages", help="list the exercise pages")
    args, extra = parser.parse_known_args(argv)
    if args.command != "grade" and extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "pages":
        print("\n".join(pages.PAGES))
    elif args.command == "rollup":
        from pca_to_vae_grader.rollup import rollup

        try:
            chosen = args.page or list((Course.read(args.course) if args.course else Course()).pages)
            for page in chosen:
                pages.page(page)
            _, report = rollup(args.submissions, chosen, args.out, course=args.course, jobs=args.jobs,
                               sandbox_user=args.sandbox_user, time_limit=args.time_limit)
        except ValueError as error:
            parser.error(str(error))
        print("\n".join(report))
    elif args.command == "grade":
        try:
            pages.page(args.page)
        except ValueError as error:
            parser.error(str(error))
        return grade_command(args.page, args.submission, results=args.results, extra=extra)
    else:
        from pca_to_vae_grader.gradescope import build_zip

        try:
            course = Course.read(args.course) if args.course else Course()
        except ValueError as error:
            parser.error(str(error))
        for page in args.pages or list(course.pages):
            try:
                print(build_zip(page, args.out, time_limit=args.time_limit, course=args.course))
            except ValueError as error:
                parser.error(str(error))
    return 0


if __name__ == "__main__":
    sys.exit(main())
