"""A small headless-Chromium check of a built HTML site, through the DevTools protocol.

:func:`check_site` serves a folder on the loopback interface, opens every HTML page in one
headless Chromium tab, and returns what a reader would see go wrong: JavaScript exceptions and
console errors, resources the browser could not load (404s included), MathJax errors, images
that did not load, ``$$`` left as text, and links to pages or anchors of the site that do not
exist. It saves a screenshot of every page. Used by ``test_browser.py``; it is a helper of the
tests, not part of the package.
"""
import base64
import functools
import http.server
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--remote-debugging-port=0", "--window-size=1280,900"]

#: Runs in the page once it has loaded and MathJax has typeset it.
PROBE = r"""
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight";
  const raw = [];
  const walker = document.createTreeWalker(document.body || document.documentElement, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.nodeValue.includes("$$") && !node.parentElement.closest(skip)) {
      raw.push(node.nodeValue.trim().slice(0, 80));
    }
  }
  return {
    mathjax: window.MathJax ? Boolean(MathJax.startup) : null,
    mathErrors: Array.from(document.querySelectorAll("mjx-merror, [data-mjx-error]"))
      .map(e => e.getAttribute("data-mjx-error") || e.textContent.slice(0, 80)),
    brokenImages: Array.from(document.images)
      .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src),
    rawDollars: raw,
    links: Array.from(document.querySelectorAll("a[href]")).map(a => a.href),
  };
})()
"""


def find_chromium():
    """The path of a Chromium executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


class DevTools:
    """One page target of a browser, driven by JSON messages over its websocket."""

    def __init__(self, ws_url):
        import websocket  # websocket-client, in the test extra

        self.ws = websocket.create_connection(ws_url, timeout=120, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {method} within {timeout} s")

    def close(self):
        self.ws.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(root):
    """An HTTP server of ``root`` on 127.0.0.1 (a free port), running in a thread."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def launch(chromium, user_data_dir):
    """Start headless Chromium with a fresh profile; return (process, page websocket URL)."""
    user_data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = user_data_dir / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"Chromium did not start (exit code {process.poll()})")
        time.sleep(0.1)
    port = int(port_file.read_text().split()[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as reply:
        pages = [t for t in json.load(reply) if t["type"] == "page"]
    return process, pages[0]["webSocketDebuggerUrl"]


def _ids(html_file, cache={}):
    """The ids and names an HTML file defines (what a #fragment can point at)."""
    if html_file not in cache:
        text = html_file.read_text(errors="replace")
        cache[html_file] = set(re.findall(r'\s(?:id|name)="([^"]+)"', text))
    return cache[html_file]


def _problems_of_link(href, page_url, base, root):
    """What is wrong with one link of the site's own pages ('' if nothing)."""
    if urlparse(href).scheme not in ("http", "https") or not href.startswith(base):
        return ""
    url, fragment = urldefrag(href)
    path = unquote(urlparse(url).path)[len(urlparse(base).path):]
    target = root / path
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"broken link {href}"
    if fragment and target.suffix == ".html" and unquote(fragment) not in _ids(target):
        return f"missing anchor {href}"
    return ""


def check_site(root, screenshots, chromium, pages=None):
    """Open every page of the site in ``root``; return ``{page: [problem, ...]}`` (empty if all is well)."""
    root, screenshots = Path(root), Path(screenshots)
    screenshots.mkdir(parents=True, exist_ok=True)
    if pages is None:  # every page, but not a redirect (index.html) nor the theme's _static files
        pages = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                       if not p.relative_to(root).parts[0].startswith("_")
                       and 'http-equiv="refresh"' not in p.read_text(errors="replace")[:2000].lower())
    server = serve(root)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-"))  # a fresh profile, every run
    process, ws_url = launch(chromium, profile)
    problems = {}
    try:
        tab = DevTools(ws_url)
        for domain in ("Page", "Runtime", "Log", "Network"):
            tab.call(f"{domain}.enable")
        tab.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        for page in pages:
            tab.events.clear()
            url = urljoin(base, page)
            tab.call("Page.navigate", url=url)
            tab.wait_for("Page.loadEventFired")
            probe = tab.call("Runtime.evaluate", expression=PROBE, awaitPromise=True, returnByValue=True,
                             timeout=60000)
            if "exceptionDetails" in probe:
                raise RuntimeError(f"{page}: the probe failed: {probe['exceptionDetails']}")
            found = probe["result"]["value"]
            time.sleep(0.2)  # late console messages
            tab.call("Runtime.evaluate", expression="1")  # collects the events that arrived
            page_problems = []
            for event in tab.events:
                method, params = event.get("method"), event.get("params", {})
                if method == "Runtime.exceptionThrown":
                    details = params["exceptionDetails"]
                    text = details.get("exception", {}).get("description") or details.get("text")
                    page_problems.append(f"JavaScript exception: {text}")
                elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                    args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
                    page_problems.append(f"console error: {args}")
                elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                    entry = params["entry"]
                    page_problems.append(f"browser error: {entry['text']} {entry.get('url', '')}".strip())
                elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
                    response = params["response"]
                    page_problems.append(f"HTTP {response['status']}: {response['url']}")
                elif method == "Network.loadingFailed" and not params.get("canceled"):
                    page_problems.append(f"failed to load a resource: {params.get('errorText')}")
            page_problems += [f"MathJax error: {e}" for e in found["mathErrors"]]
            page_problems += [f"image did not load: {src}" for src in found["brokenImages"]]
            page_problems += [f"raw $$ in the text: {text!r}" for text in found["rawDollars"]]
            page_problems += sorted({p for href in found["links"]
                                     if (p := _problems_of_link(href, url, base, root))})
            shot = tab.call("Page.captureScreenshot", format="png")
            (screenshots / (page.replace("/", "__").removesuffix(".html") + ".png")).write_bytes(
                base64.b64decode(shot["data"]))
            if page_problems:
                problems[page] = list(dict.fromkeys(page_problems))
        tab.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    return problems
