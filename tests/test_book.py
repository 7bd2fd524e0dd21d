"""The book: checks of the executed copies, then the book of a ci run as a reader meets it.

The build and the browser tests share the session's one ci run and one book build (conftest.py).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from bs4 import BeautifulSoup

from mrsisr.stages import STAGES, get_stage
from mrsisr.study.book import (
    check_consistency,
    check_executed,
    find_raw_reprs,
    public_url,
    source_sentence,
    tag_for_display,
)
from mrsisr.study.cache import current, publish, stage_output

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAPER_FIGURES = (
    "fig1_top_anatomy.png",
    "fig1_bottom_maps.png",
    "fig2_architecture.png",
    "fig_learning_curves.png",
    "fig3_examples.png",
    "fig4_validation_7t.png",
)
EXTERNAL = ("http:", "https:", "mailto:", "data:", "javascript:")


def _executed(path: Path, exception: bool | None) -> Path:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    notebook.metadata["papermill"] = {"parameters": {"profile": "ci"}, "exception": exception}
    nbformat.write(notebook, path)
    return path


def test_failed_or_unexecuted_notebooks_are_refused(tmp_path):
    assert check_executed(_executed(tmp_path / "ok.ipynb", None)).cells
    with pytest.raises(RuntimeError, match="failed.ipynb: the notebook failed"):
        check_executed(_executed(tmp_path / "failed.ipynb", True))
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "raw.ipynb")
    with pytest.raises(RuntimeError, match="raw.ipynb: not a papermill-executed notebook"):
        check_executed(tmp_path / "raw.ipynb")
    with pytest.raises(FileNotFoundError, match="missing.ipynb: executed notebook missing"):
        check_executed(tmp_path / "missing.ipynb")


def _publish_run(run_dir: Path, seeds: dict[str, int] | None = None) -> dict:
    """Fake a complete run: one published output per stage, each built from its upstream's current output."""
    record: dict = {"profile": "demo", "stages": {}}
    for stage in STAGES:
        upstream = {name: current(run_dir, name) for name in stage.upstream}
        output = stage_output(run_dir, stage.name, {"seed": (seeds or {}).get(stage.name, 0)}, upstream)
        output.mark_complete()
        publish(run_dir, output)
        record["stages"][stage.name] = {"key": output.key}
    return record


def _republish(run_dir: Path, name: str) -> None:
    stage = get_stage(name)
    upstream = {up: current(run_dir, up) for up in stage.upstream}
    output = stage_output(run_dir, name, {"seed": 0, "changed": True}, upstream)
    output.mark_complete()
    publish(run_dir, output)


def test_a_consistent_run_passes(tmp_path):
    check_consistency(tmp_path, _publish_run(tmp_path))


def test_a_page_that_shows_an_older_output_is_refused(tmp_path):
    record = _publish_run(tmp_path)
    _republish(tmp_path, "evaluation")  # evaluation run again outside the runner
    # notebook 06 reads the evaluation's output (its real-anatomy cohort), so it is stale too
    with pytest.raises(RuntimeError, match="the page of evaluation shows output .*--stage evaluation --stage beyond`"):
        check_consistency(tmp_path, record)


def test_a_stage_built_from_an_older_upstream_output_is_stale_and_so_are_its_readers(tmp_path):
    record = _publish_run(tmp_path)
    _republish(tmp_path, "training")
    record["stages"]["training"]["key"] = current(tmp_path, "training").key
    with pytest.raises(RuntimeError) as caught:
        check_consistency(tmp_path, record)
    message = str(caught.value)
    assert "evaluation was built from an older training output" in message
    assert "validation_7t was built from an older training output" in message
    assert "--stage evaluation --stage validation_7t --stage beyond`" in message and "--stage synthesis" not in message


def test_stages_run_with_different_shared_parameters_are_refused(tmp_path):
    record = _publish_run(tmp_path, seeds={"segmentation": 1})
    with pytest.raises(RuntimeError, match="segmentation ran with seed=1 but synthesis with seed=0"):
        check_consistency(tmp_path, record)


def test_display_tags_hide_injected_parameters_and_collapse_plumbing():
    cells = [nbformat.v4.new_code_cell(str(i)) for i in range(4)]
    for cell, tag in zip(cells, ["injected-parameters", "parameters", "plumbing", "figure"], strict=True):
        cell.metadata["tags"] = [tag]
    tagged = tag_for_display(nbformat.v4.new_notebook(cells=cells))
    assert [c.metadata["tags"] for c in tagged.cells] == [
        ["injected-parameters", "remove-cell"],
        ["parameters", "hide-input"],
        ["plumbing", "hide-input"],
        ["figure"],
    ]


def test_raw_reprs_are_found(tmp_path):
    (tmp_path / "good.html").write_text("<img src='a.png'>")
    (tmp_path / "bad.html").write_text("<pre>&lt;Figure size 640x480 with 1 Axes&gt;</pre>")
    assert find_raw_reprs(tmp_path) == ["bad.html: &lt;Figure size"]


def test_a_remote_becomes_its_web_address_and_a_local_one_none():
    assert public_url("git@github.com:owner/mrsisr.git\n") == "https://github.com/owner/mrsisr"
    assert public_url("https://user:token@gitlab.com/group/mrsisr.git") == "https://gitlab.com/group/mrsisr"
    assert public_url("ssh://git@github.com/owner/mrsisr") == "https://github.com/owner/mrsisr"
    for local in ("/work/main", "file:///work/main", "../main", ""):
        assert public_url(local) is None


def test_the_source_sentence_names_the_commit_and_the_remote(tmp_path):
    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a.txt").write_text("a")
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert source_sentence(repo) == (
        f"Source: commit `{commit}` of a checkout without a public remote (`git remote get-url origin` names none)."
    )
    subprocess.run([*git, "remote", "add", "origin", "git@github.com:owner/mrsisr.git"], check=True)
    assert source_sentence(repo).endswith("of [https://github.com/owner/mrsisr](https://github.com/owner/mrsisr).")
    assert source_sentence(tmp_path / "not-a-checkout") == "Source: not a git checkout, so no commit is recorded."


# --- the book of the session's ci run ------------------------------------------------------------


def _pages(html_dir: Path) -> list[Path]:
    return sorted(p for p in html_dir.rglob("*.html") if "_static" not in p.parts)


def test_the_reproducibility_page_names_the_commit_the_book_was_built_from(ci_book):
    text = BeautifulSoup((ci_book / "book" / "reproducibility.html").read_text(encoding="utf-8"), "html.parser").text
    assert "Source: commit" in text or "Source: not a git checkout" in text


def test_no_page_shows_a_raw_object_repr(ci_book):
    for page in _pages(ci_book):
        text = page.read_text(encoding="utf-8")
        for raw in ("&lt;Figure size", "&lt;matplotlib", "&lt;AxesSubplot", "&lt;Axes:"):
            assert raw not in text, f"{page.relative_to(ci_book)} shows {raw}"


def test_every_internal_link_and_image_resolves(ci_book):
    ids: dict[Path, set[str]] = {}

    def anchors(page: Path) -> set[str]:
        if page not in ids:
            soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
            ids[page] = {tag["id"] for tag in soup.find_all(id=True)}
        return ids[page]

    broken = []
    for page in _pages(ci_book):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for tag, attribute in (("a", "href"), ("img", "src"), ("link", "href"), ("script", "src")):
            for element in soup.find_all(tag):
                target = element.get(attribute)
                if not target or target.startswith(EXTERNAL):
                    continue
                url = urlparse(target)
                path = (page.parent / unquote(url.path)).resolve() if url.path else page
                if not path.is_file():
                    broken.append(f"{page.relative_to(ci_book)}: {tag} {target}")
                elif url.fragment and path.suffix == ".html" and unquote(url.fragment) not in anchors(path):
                    broken.append(f"{page.relative_to(ci_book)}: {tag} {target} (no such anchor)")
    assert not broken, "broken internal links or images:\n" + "\n".join(broken)


def test_every_paper_figure_and_table_is_in_the_book(ci_book):
    html = {page.name: page.read_text(encoding="utf-8") for page in (ci_book / "book").glob("*.html")}
    for figure in PAPER_FIGURES:
        assert any(figure in text for text in html.values()), f"{figure} is on no chapter page"
    captions = (
        "Figure 1, top row.",
        "Figure 1, bottom row.",
        "Figure 2.",
        "Figure 3.",
        "Figure 4.",
        "Table 1.",
        "Table 2.",
    )
    for caption in captions:
        bold = f"<strong>{caption}</strong>"
        assert sum(bold in text for text in html.values()) == 1, f"caption {caption!r} should be on exactly one page"
    results = BeautifulSoup(html["results.html"], "html.parser")
    assert results.find("table"), "Table 2 (glued from notebook 04) is missing on the results page"
    assert BeautifulSoup(html["methods.html"], "html.parser").find("table"), "Table 1 (from notebook 02) is missing"
    soups = [BeautifulSoup(text, "html.parser") for text in html.values()]
    pasted = [span.get_text() for soup in soups for span in soup.select(".pasted-text")]
    assert pasted and all(value.strip() for value in pasted), "a glued value is empty"
    assert "ci" in pasted, "captions must name the profile (ci) that produced them"


# --- headless Chromium ---------------------------------------------------------------------------


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page target."""

    def __init__(self, websocket_url: str) -> None:
        import websocket

        self.socket = websocket.create_connection(websocket_url, timeout=30)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def close(self) -> None:
        self.socket.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium with remote debugging; yields a DevTools client on its first page."""
    if not Path(CHROMIUM).is_file():
        pytest.skip("chromium is not installed (make test installs it when run as root)")
    port = _free_port()
    profile_dir = tempfile.mkdtemp(prefix="chromium-")
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--allow-file-access-from-files",
            f"--user-data-dir={profile_dir}",
            f"--remote-debugging-port={port}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as response:
                    targets = [t for t in json.load(response) if t["type"] == "page"]
                if targets:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chromium did not open its DevTools port within 30 s")
            time.sleep(0.2)
        client = DevTools(targets[0]["webSocketDebuggerUrl"])
        yield client
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(profile_dir, ignore_errors=True)


def _images_of(browser: DevTools, page: Path) -> list[dict]:
    browser.call("Page.navigate", url=page.as_uri())
    deadline = time.monotonic() + 30
    while browser.evaluate("document.readyState") != "complete" or browser.evaluate("location.href") != page.as_uri():
        assert time.monotonic() < deadline, f"{page} did not finish loading"
        time.sleep(0.1)
    return browser.evaluate(
        "Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))"
        ".then(() => Array.from(document.images).map(i => ({src: i.getAttribute('src'), width: i.naturalWidth})))"
    )


@pytest.mark.parametrize(
    ("page", "minimum"), [("book/index.html", 1), ("book/results.html", 3), ("book/beyond.html", 2)]
)
def test_every_figure_loads_in_a_browser(ci_book, browser, page, minimum):
    images = _images_of(browser, ci_book / page)
    assert len(images) >= minimum, f"{page}: expected at least {minimum} figures, found {images}"
    not_loaded = [image["src"] for image in images if not image["width"]]
    assert not not_loaded, f"{page}: figures that did not load: {not_loaded}"


def test_every_notebook_page_shows_its_figures(ci_book):
    for page in sorted((ci_book / "book" / "executed").glob("*.html")):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        images = [
            img for img in soup.select("article img") or soup.find_all("img") if "logo" not in img.get("class", [])
        ]
        assert images, f"{page.name}: no figure on the page (was plt.show() run under the inline backend?)"
        assert not soup.select(".cell_output .output.traceback"), f"{page.name} shows a traceback"


@pytest.mark.parametrize("page", ["book/index.html", "book/results.html", "book/beyond.html"])
def test_nothing_overflows_a_phone_screen(ci_book, browser, page):
    """At 420 px wide the page itself does not scroll sideways (wide tables scroll inside their own box)."""
    browser.call("Emulation.setDeviceMetricsOverride", width=420, height=900, deviceScaleFactor=1, mobile=False)
    try:
        _images_of(browser, ci_book / page)
        widths = browser.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    finally:
        browser.call("Emulation.clearDeviceMetricsOverride")
    assert widths[0] <= widths[1], f"{page} is {widths[0]} px wide on a {widths[1]} px screen"
