"""Reading a result file: the hook's stream against the SDK's download and a plain HTTP copy.

Synthesizes result files in the emulator (its own process), then reads each with three readers, each
in a fresh process so its peak RSS is its own:

- hook: ``GeminiHook.iter_result_lines`` (line by line, bounded memory);
- sdk: ``client.files.download`` (the whole file in memory, the google provider's approach);
- plain: an httpx streaming copy of the same bytes, the baseline for throughput.

Prints figures side by side; asserts nothing.

    .venv/bin/python benchmarks/stream_results.py [--sizes-mb 100 500]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._emulator_process import connection_env, emulator_process

MB = 1_000_000


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read(reader: str, url: str, name: str) -> dict[str, float]:
    """Runs in the child: import what the reader needs, then time the read."""
    if reader == "hook":
        from airflow_provider_gemini.hooks.gemini import GeminiHook

        hook = GeminiHook()
        _ = hook.settings
        after_imports = rss_mb()
        start = time.perf_counter()
        lines = size = 0
        for lines, line in enumerate(hook.iter_result_lines(name), start=1):  # noqa: B007
            size += len(line) + 1
    elif reader == "sdk":
        from google import genai
        from google.genai import types

        client = genai.Client(api_key="bench-key", http_options=types.HttpOptions(base_url=url))
        after_imports = rss_mb()
        start = time.perf_counter()
        data = client.files.download(file=name)
        size, lines = len(data), data.count(b"\n")
    else:
        import httpx

        after_imports = rss_mb()
        start = time.perf_counter()
        size = lines = 0
        address = f"{url}/download/v1beta/{name}:download?alt=media"
        with (
            httpx.Client(timeout=600) as client,
            client.stream("GET", address, headers={"x-goog-api-key": "bench-key"}) as response,
        ):
            for chunk in response.iter_raw(1 << 20):
                size += len(chunk)
                lines += chunk.count(b"\n")
    seconds = time.perf_counter() - start
    return {
        "mb": size / MB,
        "lines": lines,
        "seconds": seconds,
        "mb_s": size / MB / seconds,
        "peak_rss_mb": rss_mb(),
        "rss_after_imports_mb": after_imports,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--child", nargs=3, metavar=("READER", "URL", "FILE"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(read(*args.child)))
        return

    rows = []
    with emulator_process() as url:
        from airflow_provider_gemini.testing.emulator import EmulatorClient

        env = {**os.environ, **connection_env(url)}
        for size in args.sizes_mb:
            name = EmulatorClient(url).synthesize_file(size * MB)
            for reader in ("hook", "sdk", "plain"):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", reader, url, name],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows.append(
                    {"size": size, "reader": reader, **json.loads(out.stdout.strip().splitlines()[-1])}
                )

    print(f"\n{'file':>8} {'reader':<7}{'MB':>9}{'MB/s':>9}{'peak RSS MB':>13}{'RSS delta MB':>14}")
    for r in rows:
        delta = r["peak_rss_mb"] - r["rss_after_imports_mb"]
        figures = f"{r['mb']:>9.0f}{r['mb_s']:>9.0f}{r['peak_rss_mb']:>13.0f}{delta:>14.0f}"
        print(f"{r['size']:>6}MB {r['reader']:<7}{figures}")
    by = {(r["size"], r["reader"]): r for r in rows}
    small, large = min(args.sizes_mb), max(args.sizes_mb)
    growth = by[(large, "hook")]["peak_rss_mb"] - by[(small, "hook")]["peak_rss_mb"]
    print("\ntargets:")
    verdict = "met" if growth <= 50 else "MISSED"
    print(f"  hook peak RSS {small} MB -> {large} MB grows {growth:.0f} MB (within 50): {verdict}")
    for size in args.sizes_mb:
        share = by[(size, "hook")]["mb_s"] / by[(size, "plain")]["mb_s"]
        verdict = "met" if share >= 0.7 else "MISSED"
        print(f"  {size} MB: hook throughput {share:.0%} of the plain copy (>= 70%): {verdict}")


if __name__ == "__main__":
    main()
