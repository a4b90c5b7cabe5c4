"""How fast the "Gemini batches" page answers with 5 000 jobs in the account, in a real Airflow.

Starts the e2e stack (api-server, scheduler, dag-processor, triggerer, the emulator in its own process)
with no DAGs, fills the emulator with ``--jobs`` finished jobs, then times, each ``--rounds`` times:

- the page's HTML (``GET /gemini-batches/``);
- its jobs answer with a cold cache (a page size not asked before: one list call) and a warm one;
- the whole page in Chromium, from navigation until its 50 rows are drawn;

beside two baselines through the same hook: the one list call the page makes, and reading the whole
account as ``GeminiHook.list_batches`` does (what a page without page tokens would cost). Prints
medians and the emulator's list calls per page load. Asserts nothing.

    .venv/bin/python benchmarks/batches_page.py [--jobs 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from airflow_provider_gemini.plugins.gemini_batches import URL_PREFIX
from airflow_provider_gemini.testing.emulator import EmulatorClient
from tests.e2e.stack import API_KEY, PASSWORD, USERNAME, AirflowStack
from tests.e2e.test_browser import CHROMIUM, CHROMIUM_ARGS


def timed(call: Callable[[], Any], rounds: int) -> float:
    """Median wall time of ``call`` in milliseconds."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def browser_render(stack: AirflowStack, rounds: int) -> tuple[float, float]:
    """Median ms from navigation to 50 drawn rows, and list calls per load (pages asked anew)."""
    from playwright.sync_api import sync_playwright

    emulator = EmulatorClient(stack.emulator_url)
    times, calls = [], []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = chromium.new_page()
        page.goto(f"{stack.url}/")
        page.get_by_label("Username").fill(USERNAME)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{stack.url}/")
        for _ in range(rounds):
            page.wait_for_timeout(4500)  # past the page's 4 s cache: every load lists anew
            before = emulator.stats()["calls"]["lists"]
            start = time.perf_counter()
            page.goto(f"{stack.url}{URL_PREFIX}/")
            page.locator("tr.job").nth(49).wait_for()
            times.append((time.perf_counter() - start) * 1000)
            calls.append(emulator.stats()["calls"]["lists"] - before)
        chromium.close()
    return statistics.median(times), max(calls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="gemini-bench-page-"))
    (home / "dags").mkdir()
    stack = AirflowStack(home, home / "dags")
    try:
        stack.start()
        emulator = EmulatorClient(stack.emulator_url)
        emulator.add_history(args.jobs)
        token = httpx.post(
            f"{stack.url}/auth/token", json={"username": USERNAME, "password": PASSWORD}, timeout=30
        ).json()["access_token"]
        client = httpx.Client(
            base_url=f"{stack.url}{URL_PREFIX}", headers={"Authorization": f"Bearer {token}"}, timeout=120
        )
        client.get("/api/jobs").raise_for_status()  # builds the app on its first request
        sizes = iter(range(100, 0, -1))

        def cold() -> None:
            client.get("/api/jobs", params={"page_size": next(sizes)}).raise_for_status()

        rows = [
            ("page HTML", timed(lambda: client.get("/").raise_for_status(), args.rounds)),
            ("jobs answer, cold cache (1 list call)", timed(cold, args.rounds)),
            (
                "jobs answer, warm cache",
                timed(lambda: client.get("/api/jobs").raise_for_status(), args.rounds),
            ),
            ("spend answer", timed(lambda: client.get("/api/spend").raise_for_status(), args.rounds)),
        ]
        render, calls = browser_render(stack, args.rounds)
        rows.append((f"Chromium: navigation to 50 rows drawn ({calls} list call per load)", render))

        bench = {"conn_type": "gemini", "password": API_KEY, "extra": {"base_url": stack.emulator_url}}
        os.environ["AIRFLOW_CONN_GEMINI_BENCH"] = json.dumps(bench)
        from airflow_provider_gemini.hooks.gemini import GeminiHook

        hook = GeminiHook("gemini_bench")
        rows.append(
            ("baseline: one list call through GeminiHook", timed(hook.list_batches_page, args.rounds))
        )
        before = emulator.stats()["calls"]["lists"]
        whole = timed(hook.list_batches, 1)
        pages = emulator.stats()["calls"]["lists"] - before
        rows.append((f"baseline: the whole account, list_batches ({pages} list calls)", whole))
        client.close()
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)

    print(f"\nThe Gemini batches page, {args.jobs} jobs in the account, median of {args.rounds} (ms)")
    width = max(len(name) for name, _ in rows)
    for name, ms in rows:
        print(f"  {name:<{width}}  {ms:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
