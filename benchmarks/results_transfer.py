"""Storing a job's results: our transfer in each output format beside a plain copy of the same bytes.

For each size, a SUCCEEDED job with a synthesized result file is made in the emulator (its own
process); each writer then runs in a fresh process, so its peak RSS is its own:

- stdlib: the file read with ``urllib`` into one buffer (``readinto``) and written to a local file:
  the baseline, the fastest plain streaming copy we know in Python;
- jsonl, flat_jsonl, csv, parquet: ``GeminiBatchResultsToStorageOperator`` with that
  ``output_format`` to a local file (MB/s of the result file over the whole ``execute``, job lookup
  included; "streaming" over the pass over the results alone);
- plain (on request): an httpx streaming copy (the SDK's own transport);
- sdk (on request): ``client.files.download`` into memory, then written out (the google provider's
  approach).

One-off imports (httpx, the SDK, pyarrow) are paid before the clock starts, for every writer. Prints
figures side by side, each format's throughput as a share of the stdlib copy's, and the targets
(jsonl >= 70%, the flat formats >= 35%, peak RSS < 300 MB and flat with size); asserts nothing.

    .venv/bin/python benchmarks/results_transfer.py [--sizes-mb 100 1000] [--writers stdlib jsonl ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._emulator_process import connection_env, emulator_process

MB = 1_000_000
OPERATOR_WRITERS = ("jsonl", "flat_jsonl", "csv", "parquet")
WRITERS = ("stdlib", *OPERATOR_WRITERS, "plain", "sdk")
DEFAULT_WRITERS = ("stdlib", *OPERATOR_WRITERS)
TARGETS = {"jsonl": 0.70, "flat_jsonl": 0.35, "csv": 0.35, "parquet": 0.35}  # shares of the stdlib copy


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(writer: str, url: str, batch_name: str, out_dir: str) -> dict[str, float]:
    from airflow_provider_gemini.hooks.gemini import GeminiHook

    hook = GeminiHook()
    job = hook.get_batch(batch_name)  # (this imports the SDK before the clock)
    target = Path(out_dir) / f"out.{writer}"
    if writer in OPERATOR_WRITERS:
        from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

        operator = GeminiBatchResultsToStorageOperator(
            task_id="store", batch_name=batch_name, destination=str(target), output_format=writer
        )
        if writer == "parquet":  # imported before the clock starts, as httpx and the SDK are for the others
            import pyarrow.parquet  # noqa: F401
        # Airflow loads its plugins the first time a task touches object storage (hook lineage):
        # a one-off cost of the process, paid before the task's own work in a real worker.
        from airflow.sdk.lineage import get_hook_lineage_collector

        get_hook_lineage_collector()
        write = operator._write
        streaming: list[float] = []

        def timed_write(*args: object) -> int:  # the streaming part alone, without the job lookup
            began = time.perf_counter()
            try:
                return write(*args)  # type: ignore[arg-type]
            finally:
                streaming.append(time.perf_counter() - began)

        operator._write = timed_write  # type: ignore[method-assign]
        start_rss, start = rss_mb(), time.perf_counter()
        operator.execute({})
    elif writer == "plain":
        import httpx

        client = httpx.Client(timeout=600)  # made before the clock, as the SDK's client is
        address = f"{hook.settings.download_base}/{job.result_file}:download?alt=media"
        start_rss, start = rss_mb(), time.perf_counter()
        with (
            client.stream("GET", address, headers={"x-goog-api-key": "bench-key"}) as response,
            open(target, "wb") as sink,
        ):
            for chunk in response.iter_raw(1 << 20):
                sink.write(chunk)
    elif writer == "stdlib":
        import urllib.request

        address = f"{hook.settings.download_base}/{job.result_file}:download?alt=media"
        request = urllib.request.Request(address, headers={"x-goog-api-key": "bench-key"})
        buffer = memoryview(bytearray(1 << 20))
        start_rss, start = rss_mb(), time.perf_counter()
        with urllib.request.urlopen(request, timeout=600) as response, open(target, "wb") as sink:
            while size := response.readinto(buffer):
                sink.write(buffer[:size])
    else:
        from google import genai
        from google.genai import types

        client = genai.Client(api_key="bench-key", http_options=types.HttpOptions(base_url=url))
        start_rss, start = rss_mb(), time.perf_counter()
        target.write_bytes(client.files.download(file=job.result_file))
    seconds = time.perf_counter() - start
    hook = GeminiHook()
    source_mb = hook.get_file(hook.get_batch(batch_name).result_file)["sizeBytes"]
    stream_seconds = streaming[0] if writer in OPERATOR_WRITERS else seconds
    return {
        "source_mb": int(source_mb) / MB,
        "written_mb": target.stat().st_size / MB,
        "seconds": seconds,
        "mb_s": int(source_mb) / MB / seconds,
        "stream_mb_s": int(source_mb) / MB / stream_seconds,
        "peak_rss_mb": rss_mb(),
        "rss_delta_mb": rss_mb() - start_rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--writers", nargs="+", choices=WRITERS, default=list(DEFAULT_WRITERS))
    parser.add_argument("--child", nargs=4, metavar=("WRITER", "URL", "BATCH", "DIR"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(*args.child)))
        return

    rows = []
    with emulator_process() as url, tempfile.TemporaryDirectory() as out_dir:
        from airflow_provider_gemini.testing.emulator import EmulatorClient

        env = {**os.environ, **connection_env(url)}
        for size in args.sizes_mb:
            batch = EmulatorClient(url).synthesize_job(size * MB)
            for writer in args.writers:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", writer, url, batch, out_dir],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows.append(
                    {"size": size, "writer": writer, **json.loads(out.stdout.strip().splitlines()[-1])}
                )
                for leftover in Path(out_dir).iterdir():
                    leftover.unlink()

    print(
        f"\n{'results':>8} {'writer':<11}{'written MB':>11}{'MB/s':>8}{'streaming MB/s':>16}"
        f"{'peak RSS MB':>13}{'RSS growth MB':>15}"
    )
    for r in rows:
        figures = (
            f"{r['written_mb']:>11.0f}{r['mb_s']:>8.0f}{r['stream_mb_s']:>16.0f}"
            f"{r['peak_rss_mb']:>13.0f}{r['rss_delta_mb']:>15.0f}"
        )
        print(f"{r['size']:>6}MB {r['writer']:<11}{figures}")
    by = {(r["size"], r["writer"]): r for r in rows}
    small, large = min(args.sizes_mb), max(args.sizes_mb)
    print("\nthroughput as a share of the stdlib copy of the same bytes (target), whole execute / streaming:")
    for size in args.sizes_mb:
        copy = by.get((size, "stdlib"))
        for writer, target in TARGETS.items():
            if copy is None or (size, writer) not in by:
                continue
            share = by[(size, writer)]["mb_s"] / copy["mb_s"]
            streaming = by[(size, writer)]["stream_mb_s"] / copy["mb_s"]
            verdict = "met" if share >= target else "MISSED"
            print(
                f"  {size:>5} MB {writer:<11}{share:>5.0%} / {streaming:>4.0%}  (>= {target:.0%}): {verdict}"
            )
    print("\npeak RSS (< 300 MB, and within 50 MB from the smallest size to the largest):")
    for writer in TARGETS:
        if (large, writer) not in by:
            continue
        peak = by[(large, writer)]["peak_rss_mb"]
        growth = peak - by[(small, writer)]["peak_rss_mb"] if (small, writer) in by else 0.0
        verdict = "met" if peak < 300 and abs(growth) <= 50 else "MISSED"
        print(f"  {writer:<11}{peak:>5.0f} MB at {large} MB, {growth:+.0f} MB from {small} MB: {verdict}")


if __name__ == "__main__":
    main()
