"""A classroom at once: N browser sessions open the explorer together, each types its own sentence, and each must
see its charts with no exception box. Prints one line per session (seconds to the first attribution) and a
Markdown table for docs/performance.md. Not a pytest test (it takes minutes); run it by hand:

    .venv/bin/python tests/load_explorer.py --sessions 6 [--model minilm-demo]
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENTENCES = ["The plot was thin but the actors made it sing.", "A dull, lifeless film that never finds its voice.",
             "I laughed, I cried, and I would watch it again tomorrow.", "Two hours of my life I will never get back.",
             "Beautifully shot, though the ending falls flat.", "An uneven script rescued by a fearless lead.",
             "Nothing here works: not the jokes, not the music, not the pacing.", "A small miracle of a movie.",
             "Predictable from start to finish, and proud of it.", "Warm, funny and surprisingly wise."]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--model", default=None, help="ADDROP_DEFAULT_MODEL for the server (default: by data)")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from tests.test_browser import ARGS, CHROMIUM, _free_port

    import subprocess
    import tempfile
    import urllib.request

    port = _free_port()
    env = dict(os.environ, ADDROP_RUNS_DIR=tempfile.mkdtemp(), HF_HUB_OFFLINE="1",
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    if a.model:
        env["ADDROP_DEFAULT_MODEL"] = a.model
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--server.fileWatcherType", "none"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(180):
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                break
        except OSError:
            time.sleep(0.5)
    results: dict[int, tuple[float | None, str]] = {}
    start = threading.Barrier(a.sessions, timeout=a.timeout)

    def one(i: int) -> None:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            try:
                page.goto(url + "/explorer", wait_until="domcontentloaded")
                box = page.locator("textarea").first
                box.wait_for(timeout=a.timeout * 1000)
                start.wait()
                t0 = time.perf_counter()
                box.fill(SENTENCES[i % len(SENTENCES)])
                box.press("Control+Enter")
                page.wait_for_timeout(1000)  # the rerun has started
                page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3 && "
                                       "![...document.querySelectorAll('[data-testid=\"stStatusWidget\"]')]"
                                       ".some(e => e.innerText.includes('Running'))", timeout=a.timeout * 1000)
                seconds = time.perf_counter() - t0
                n = page.locator('[data-testid="stException"]').count()
                results[i] = (seconds, "ok" if n == 0 else f"{n} exception box(es): "
                              + page.locator('[data-testid="stException"]').first.inner_text()[:200])
            except Exception as e:  # noqa: BLE001 - reported per session
                start.abort()  # the others must not wait for this one
                results[i] = (None, f"failed: {type(e).__name__}: {str(e)[:200]}")
            finally:
                browser.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(a.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    proc.terminate()
    print("| session | seconds to its first attribution | result |\n|---|---|---|")
    for i in sorted(results):
        s, msg = results[i]
        print(f"| {i + 1} | {'-' if s is None else f'{s:.1f}'} | {msg} |")
    return 0 if all(m == "ok" for _, m in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
