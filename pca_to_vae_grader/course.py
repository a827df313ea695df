"""A course file: which pages a course grades, and per page and exercise the points and the visibility.

A TOML file (Python reads it with ``tomllib``); every key is optional::

    visibility = "visible"              # the default of every test: visible, hidden or after_due_date

    [pages.gaussians]                   # a page of the course; a page not listed is not graded
    visibility = "after_due_date"       # the default of this page's tests

    [pages.gaussians.exercises.kl_gauss]
    points = 6                          # the exercise's total: its tests keep their proportions
    visibility = "hidden"

    [pages.em]                          # the page as its tests' markers have it

Visibility is Gradescope's (https://gradescope-autograders.readthedocs.io/en/latest/specs/): ``visible``
(the student sees the test at once), ``hidden`` (never), ``after_due_date`` (after the due date), and
``after_published`` (once the grades are published). The Gradescope zips (``build-zip --course``), the
roll-up and ``pytest ... --course`` read it; without one every page counts, each test with the points of
its ``@pytest.mark.points(n)`` marker, visible.
"""
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pca_to_vae_grader import pages as registry

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


@dataclass(frozen=True)
class Course:
    """What a course grades: ``pages`` maps a page to ``{function: (points or None, visibility)}``."""

    pages: dict = field(default_factory=lambda: {name: {} for name in registry.PAGES})
    visibility_default: str = "visible"
    page_visibility: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path):
        """The course of a TOML file; a ValueError that names the file, the key and what was expected."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ValueError(f"cannot read the course file {path}: {error}") from None
        where = f"course file {path.name}"
        _keys(data, {"visibility", "pages", "name"}, where)
        default = _visibility(data.get("visibility", "visible"), f"{where}: visibility")
        listed = data.get("pages", {})
        if not isinstance(listed, dict) or not listed:
            raise ValueError(f"{where}: [pages.<page>] tables are expected, one per page of the course "
                             f"(pages: {', '.join(registry.PAGES)})")
        pages, page_visibility = {}, {}
        for name, spec in listed.items():
            if name not in registry.PAGES:
                raise ValueError(f"{where}: no exercise page {name!r}; the pages are {', '.join(registry.PAGES)}")
            spec = spec if isinstance(spec, dict) else {}
            _keys(spec, {"visibility", "exercises"}, f"{where}: [pages.{name}]")
            if "visibility" in spec:
                page_visibility[name] = _visibility(spec["visibility"], f"{where}: pages.{name}.visibility")
            exercises = {}
            for function, setting in spec.get("exercises", {}).items():
                key = f"{where}: pages.{name}.exercises.{function}"
                if function not in registry.PAGES[name].exercises:
                    raise ValueError(f"{key}: {name} has no exercise {function!r}; its exercises are "
                                     f"{', '.join(registry.PAGES[name].exercises)}")
                if not isinstance(setting, dict):
                    raise ValueError(f"{key}: a table with points and/or visibility is expected")
                _keys(setting, {"points", "visibility"}, key)
                points = setting.get("points")
                if points is not None and (isinstance(points, bool) or not isinstance(points, (int, float))
                                           or points < 0):
                    raise ValueError(f"{key}.points: a number >= 0 is expected; got {points!r}")
                visibility = setting.get("visibility")
                exercises[function] = (None if points is None else float(points),
                                       None if visibility is None else _visibility(visibility, f"{key}.visibility"))
            pages[name] = exercises
        return cls(pages, default, page_visibility)

    def includes(self, page):
        return page in self.pages

    def points(self, page, function):
        """The points the course gives the exercise (all its tests together), or None: its tests' markers."""
        return self.pages.get(page, {}).get(function, (None, None))[0]

    def visibility(self, page, function):
        """The visibility of the exercise's tests."""
        setting = self.pages.get(page, {}).get(function, (None, None))[1]
        return setting or self.page_visibility.get(page) or self.visibility_default


def _keys(table, allowed, where):
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}")


def _visibility(value, where):
    if value not in VISIBILITIES:
        raise ValueError(f"{where}: {value!r} is not a Gradescope visibility; expected one of {', '.join(VISIBILITIES)}")
    return value
