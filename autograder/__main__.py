"""Instructor commands: ``python -m autograder build-zip [PAGE ...] [--out DIR] [--time-limit S]``.

Without pages, builds one Gradescope zip per exercise page with tests.
"""
import argparse

from autograder.gradescope import build_zip, pages


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-zip", help="build the Gradescope autograder zip of exercise pages")
    build.add_argument("pages", nargs="*", help=f"pages to build (default: all of {', '.join(pages())})")
    build.add_argument("--out", default="dist/autograder", help="folder for the zips (default: dist/autograder)")
    build.add_argument("--time-limit", type=float, default=10.0, help="seconds the submission's code may run in one test")
    args = parser.parse_args(argv)
    for page in args.pages or pages():
        try:
            print(build_zip(page, args.out, time_limit=args.time_limit))
        except ValueError as error:
            parser.error(str(error))


if __name__ == "__main__":
    main()
