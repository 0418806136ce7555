"""Explorer latency in a real browser (not collected by pytest: a plain script).

Starts `streamlit run app.py` with the trained default (minilm-demo), opens the explorer in Debian's Chromium
through Playwright and times what a person waits for: the first attribution after the server starts, a change
of p, q, seed, layer and head, a method switch (GA -> AA -> GA) and IGA on the demo sentence. Each time runs
from the click or key press to the last change of the page (a MutationObserver notes it; the page must then stay
still for QUIET seconds and Streamlit must say it is no longer running). Prints a Markdown table.

    python tests/perf_explorer.py [--model minilm-demo] [--repeats 3] [--out perf.json]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
QUIET = 1.5  # seconds without a DOM change that count as "done"

# the page's last change that a person sees: react-aria's live region (an invisible `role="log"` element that reads
# "12 options available." to screen readers after a selectbox was used) clears its messages 1-2 s later on a timer
# of its own, and counting that made a redraw of 0.7 s read as 2 s
WATCH = """() => { window.__last = performance.now();
  const unseen = (m) => { const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
    return el && el.closest('[aria-live]') && el.closest('[role="log"]'); };
  new MutationObserver((ms) => { if (ms.some((m) => !unseen(m))) window.__last = performance.now(); })
    .observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true}); }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str):
    port = _free_port()
    env = dict(os.environ, ADDROP_DEFAULT_MODEL=model, ADDROP_RUNS_DIR=tempfile.mkdtemp(prefix="perf-runs-"),
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    log = open(Path(tempfile.mkdtemp(prefix="perf-log-")) / "streamlit.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("streamlit did not start")


def settle(page, t0: float, timeout: float = 300) -> float:
    """Seconds from t0 (performance.now() in ms) to the page's last change, once it has been still for QUIET
    seconds and no run is going on."""
    end = time.time() + timeout
    while time.time() < end:
        page.wait_for_timeout(200)
        running = page.locator('[data-testid="stStatusWidget"]').filter(has_text="Running").count() > 0 or \
            page.locator('[data-testid="stSpinner"]').count() > 0
        now, last = page.evaluate("() => [performance.now(), window.__last]")
        if not running and now - last > QUIET * 1000:
            return (last - t0) / 1000
    raise RuntimeError("the page did not settle")


def timed(page, action) -> float:
    if isinstance(action, tuple):
        action[0]()
        action = action[1]
    t0 = page.evaluate("() => { window.__last = performance.now(); return window.__last; }")
    action()
    return settle(page, t0)


def slider_key(page, label: str, key: str):
    thumb = page.locator('[data-testid="stSlider"]').filter(has_text=label).first.get_by_role("slider")
    return lambda: (thumb.focus(), thumb.press(key))


def pick(page, label: str, option: str):
    """Open a selectbox and type the option (not timed); the returned action presses Enter."""
    def prepare():
        box = page.locator('[data-testid="stSelectbox"]').filter(
            has=page.get_by_text(label, exact=True)).first
        box.locator("input").first.click()
        page.keyboard.type(option)
        page.wait_for_timeout(300)
    return prepare, lambda: page.keyboard.press("Enter")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="minilm-demo")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    load = os.getloadavg()[0]
    proc, url = start_server(args.model)
    rows: dict[str, list[float]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            t = time.time()
            page.goto(url + "/explorer", wait_until="domcontentloaded")
            page.get_by_text("Every layer and head", exact=True).wait_for(timeout=300_000)
            page.evaluate(WATCH)
            # performance.now() counts from this page's navigation start: settle gives the time to its last change
            # (not counting its own wait for QUIET seconds of stillness, as every other row)
            drawn = settle(page, 0)
            rows["first attribution after start (page open to drawn)"] = [drawn]
            rows["the same, to settle() seeing it still (QUIET s more, and polling)"] = [time.time() - t]
            for _ in range(args.repeats):
                for name, act in (("p change", slider_key(page, "p: candidate region", "ArrowRight")),
                                  ("q change", slider_key(page, "q: drop rate", "ArrowRight")),
                                  ("seed (Resample)", lambda: page.get_by_role("button", name="Resample").click()),
                                  ("layer change", pick(page, "Layer", f"layer {1 + len(rows.get('layer change', []))}")),
                                  ("head change", pick(page, "Head", f"head {1 + len(rows.get('head change', []))}")),
                                  ("method GA -> AA", pick(page, "Method", "AA")),
                                  ("method AA -> GA", pick(page, "Method", "GA"))):
                    rows.setdefault(name, []).append(timed(page, act))
            rows["IGA, demo sentence (GA -> IGA)"] = [timed(page, pick(page, "Method", "IGA"))]
            page.get_by_text("Attributed in", exact=False).first.wait_for()
            rows["shown attribution time (page caption)"] = [float("nan")]
            caption = page.get_by_text("Attributed in", exact=False).first.inner_text()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(20)
    print(f"load average before the run: {load:.2f}; after: {os.getloadavg()[0]:.2f}; model {args.model}")
    print("| interaction | median s | all s |\n|---|---|---|")
    for name, v in rows.items():
        if name.startswith("shown"):
            continue
        print(f"| {name} | {statistics.median(v):.2f} | {', '.join(f'{x:.2f}' for x in v)} |")
    print(f"IGA caption: {caption.splitlines()[0][:160]}")
    if args.out:
        Path(args.out).write_text(json.dumps(dict(load=load, model=args.model, rows=rows, caption=caption),
                                             indent=1))


if __name__ == "__main__":
    main()
