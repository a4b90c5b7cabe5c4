"""1 000 GeminiBatchTriggers in one event loop against the emulator, beside a baseline.

The baseline builds a new client on every poll (as the google provider's trigger does); ours builds
one per trigger. Each fleet runs in a fresh process so its peak RSS is its own. Prints figures side by
side; asserts nothing.

    .venv/bin/python benchmarks/trigger_fleet.py [--triggers 1000] [--poll 2.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._emulator_process import connection_env, emulator_process

TARGETS = {"lag_p99_ms": 50.0, "peak_rss_mb": 300.0, "cpu_per_poll_ratio": 0.5}


def _create_jobs(count: int, url: str) -> list[str]:
    """Jobs that finish at staggered times: running 4 s to 24 s."""
    from airflow_provider_gemini.hooks.gemini import GeminiHook
    from airflow_provider_gemini.testing.emulator import EmulatorClient

    control = EmulatorClient(url)
    hook = GeminiHook()
    names = []
    request = [{"request": {"contents": [{"parts": [{"text": "hello"}]}]}, "metadata": {"key": "k"}}]
    for i in range(count):
        control.configure(pending_seconds=1.0, running_seconds=4.0 + (i % 100) * 0.2)
        names.append(
            hook.create_batch(
                model="gemini-2.5-flash", display_name=f"fleet-{i}", inline_requests=request
            ).name
        )
    return names


async def _lag_monitor(samples: list[float], stop: asyncio.Event, tick: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(tick)
        samples.append(max(0.0, loop.time() - start - tick))


async def _run_fleet(names: list[str], poll: float, baseline: bool) -> dict[str, float]:
    from airflow_provider_gemini.hooks._settings import GeminiSettings
    from airflow_provider_gemini.hooks.gemini import GeminiHook
    from airflow_provider_gemini.triggers.batch import GeminiBatchTrigger

    class FreshClientHook(GeminiHook):
        async def aget_conn(self):  # type: ignore[no-untyped-def]
            conn = await self.aget_connection(self.gemini_conn_id)
            settings = GeminiSettings.from_connection(conn.password, conn.extra_dejson)
            self._settings = settings
            return self._new_client(settings).aio

    class NewClientEveryPoll(GeminiBatchTrigger):
        @property  # type: ignore[override]
        def hook(self) -> GeminiHook:
            return FreshClientHook(gemini_conn_id=self.gemini_conn_id)

    cls = NewClientEveryPoll if baseline else GeminiBatchTrigger
    triggers = [cls(batch_name=name, poll_interval=poll) for name in names]
    samples: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.create_task(_lag_monitor(samples, stop))
    cpu0, wall0 = time.process_time(), time.monotonic()
    events = await asyncio.gather(*(t.run().__anext__() for t in triggers))
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    stop.set()
    await monitor
    ok = sum(1 for e in events if e.payload["status"] == "success")
    lags = sorted(samples)
    return {
        "events_success": ok,
        "wall_s": wall,
        "cpu_s": cpu,
        "lag_p50_ms": 1000 * statistics.median(lags),
        "lag_p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))],
        "lag_max_ms": 1000 * lags[-1],
    }


def child(mode: str, url: str, count: int, poll: float) -> None:
    from airflow_provider_gemini.testing.emulator import EmulatorClient

    names = _create_jobs(count, url)
    gets_before = EmulatorClient(url).stats()["calls"]["gets"]
    result = asyncio.run(_run_fleet(names, poll, baseline=(mode == "baseline")))
    result["polls"] = EmulatorClient(url).stats()["calls"]["gets"] - gets_before
    result["cpu_ms_per_poll"] = 1000 * result["cpu_s"] / max(1, result["polls"])
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--child", choices=["ours", "baseline"])
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.triggers, args.poll)
        return

    results = {}
    with emulator_process() as url:
        env = {**os.environ, **connection_env(url)}
        for mode in ("ours", "baseline"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    "--url",
                    url,
                    "--triggers",
                    str(args.triggers),
                    "--poll",
                    str(args.poll),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])

    rows = [
        "events_success",
        "polls",
        "wall_s",
        "cpu_s",
        "cpu_ms_per_poll",
        "lag_p50_ms",
        "lag_p99_ms",
        "lag_max_ms",
        "peak_rss_mb",
    ]
    print(f"\n{args.triggers} triggers, poll every {args.poll} s, one event loop\n")
    print(f"{'measure':<18}{'ours':>14}{'new client/poll':>18}")
    for row in rows:
        print(f"{row:<18}{results['ours'][row]:>14.2f}{results['baseline'][row]:>18.2f}")
    ours, base = results["ours"], results["baseline"]
    ratio = ours["cpu_ms_per_poll"] / base["cpu_ms_per_poll"]
    print("\ntargets:")
    print(
        f"  lag p99 {ours['lag_p99_ms']:.1f} ms (< {TARGETS['lag_p99_ms']:.0f}): "
        f"{'met' if ours['lag_p99_ms'] < TARGETS['lag_p99_ms'] else 'MISSED'}"
    )
    print(
        f"  peak RSS {ours['peak_rss_mb']:.0f} MB (< {TARGETS['peak_rss_mb']:.0f}): "
        f"{'met' if ours['peak_rss_mb'] < TARGETS['peak_rss_mb'] else 'MISSED'}"
    )
    print(
        f"  CPU per poll {ratio:.2f} of the baseline's (<= {TARGETS['cpu_per_poll_ratio']}): "
        f"{'met' if ratio <= TARGETS['cpu_per_poll_ratio'] else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
