"""Every page of the built book, opened in a real browser (headless Chromium), shows no error.

The test takes the book that ``test_book_builds.py`` builds (the session fixture ``built_book``,
built once), serves it on the loopback interface, and opens every page in Debian's ``chromium``
through the DevTools protocol (``tests/book/browser.py``). It fails on a JavaScript exception or
console error, a resource that does not load (a 404 such as ``/favicon.ico`` included), a MathJax
error, an image that did not load, ``$$`` left as text, and a link to a page or an anchor of the
book that does not exist. A screenshot of every page is kept as a test artefact in ``book/_build/browser-check/`` (git-ignored;
pytest's own temporary folders are pruned by later sessions).

Where ``chromium`` is missing the set-up installs it (``apt-get install chromium``, as root); the
test is skipped, with the reason, only where that is impossible.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from browser import check_site, find_chromium


def _install_chromium():
    """Install Debian's chromium where it is missing; return (path or None, why not)."""
    if path := find_chromium():
        return path, ""
    if shutil.which("apt-get") is None:
        return None, "chromium is not installed and there is no apt-get to install it"
    if os.geteuid() != 0:
        return None, "chromium is not installed, and installing it with apt-get needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log = ""
    for command in (["apt-get", "install", "-y", "-qq", "chromium"],
                    ["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
        log = (result.stdout + result.stderr)[-500:]
        if command[1] == "install" and result.returncode == 0 and find_chromium():
            return find_chromium(), ""
    return None, f"chromium is not installed and apt-get could not install it: {log}"


@pytest.fixture(scope="session")
def chromium():
    pytest.importorskip("websocket", reason="websocket-client (the test extra) is not installed")
    path, why = _install_chromium()
    if path is None:
        pytest.skip(why)
    return path


#: Where the screenshots are kept after the run (git-ignored; CI can upload it as an artefact).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "book" / "_build" / "browser-check"


@pytest.mark.slow
def test_every_page_loads_cleanly_in_a_browser(built_book, chromium):
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    screenshots = SCREENSHOTS
    problems = check_site(built_book.html, screenshots, chromium)
    pages = list(screenshots.glob("*.png"))
    assert len(pages) >= 25, f"only {len(pages)} pages were opened"
    report = "\n".join(f"{page}:\n  " + "\n  ".join(found) for page, found in problems.items())
    assert not problems, f"{len(problems)} pages show problems (screenshots in {screenshots}):\n{report}"
