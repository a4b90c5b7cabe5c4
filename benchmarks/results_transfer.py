"""Storing a job's results: our transfer (jsonl passthrough, parquet) beside a plain copy and the SDK.

For each size, a SUCCEEDED job with a synthesized result file is made in the emulator (its own
process); each writer then runs in a fresh process, so its peak RSS is its own:

- jsonl: ``GeminiBatchResultsToStorageOperator`` with ``output_format="jsonl"`` to a local file
  (MB/s over the whole ``execute``, job lookup included; "streaming" over the copy alone);
- jsonl-cold: the same with NumPy's import on the clock (the SDK already imported);
- jsonl-task: the same as a task runs it: the SDK's import and NumPy's both on the clock (NumPy loads
  while the SDK does and the job is looked up);
- parquet: the same operator with ``output_format="parquet"``;
- plain: an httpx streaming copy of the same bytes to a local file (the throughput baseline: httpx
  is the SDK's own transport);
- stdlib: the same copy read with ``urllib`` into one buffer (``readinto``), as the operator reads,
  for reference: the fastest plain copy we know in Python;
- sdk: ``client.files.download`` into memory, then written out (the google provider's approach).

One-off imports (httpx, the SDK, pyarrow, NumPy) are paid before the clock starts, for every writer;
what NumPy's import costs (once per task, while the job is looked up) is measured apart and printed.
Prints figures side by side; asserts nothing.

    .venv/bin/python benchmarks/results_transfer.py [--sizes-mb 100 1000]
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
WRITERS = ("jsonl", "jsonl-cold", "jsonl-task", "parquet", "plain", "stdlib", "sdk")
OPERATOR_WRITERS = ("jsonl", "jsonl-cold", "jsonl-task", "parquet")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(writer: str, url: str, batch_name: str, out_dir: str) -> dict[str, float]:
    from airflow_provider_gemini.hooks.gemini import GeminiHook

    if writer != "jsonl-task":  # (this looks the job up, importing the SDK before the clock)
        hook = GeminiHook()
        job = hook.get_batch(batch_name)
    target = Path(out_dir) / f"out.{writer}"
    if writer in OPERATOR_WRITERS:
        from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

        output_format = writer.removesuffix("-cold").removesuffix("-task")
        operator = GeminiBatchResultsToStorageOperator(
            task_id="store", batch_name=batch_name, destination=str(target), output_format=output_format
        )
        # Imported before the clock starts, as httpx and the SDK are for the others. jsonl-cold
        # leaves NumPy's import (the passthrough's counting) on the clock; jsonl-task leaves the SDK's
        # and NumPy's, as a task's execute() meets them.
        if writer == "parquet":
            import pyarrow.parquet  # noqa: F401
        elif writer == "jsonl":
            import numpy  # noqa: F401
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


def numpy_import_seconds(repeat: int = 5) -> float:
    """What importing NumPy adds to a fresh interpreter's start (the best of a few runs)."""

    def best(code: str) -> float:
        times = []
        for _ in range(repeat):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - began)
        return min(times)

    return best("import numpy") - best("pass")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
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
            for writer in WRITERS:
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
    numpy_ms = numpy_import_seconds() * 1000
    print(f"\nonce per task, while the job is looked up: importing NumPy takes {numpy_ms:.0f} ms")
    print("\ntargets:")
    for size in args.sizes_mb:
        share = by[(size, "jsonl")]["mb_s"] / by[(size, "plain")]["mb_s"]
        streaming = by[(size, "jsonl")]["stream_mb_s"] / by[(size, "plain")]["mb_s"]
        stdlib = by[(size, "jsonl")]["mb_s"] / by[(size, "stdlib")]["mb_s"]
        verdict = "met" if share >= 0.7 else "MISSED"
        cold = by[(size, "jsonl-cold")]["mb_s"] / by[(size, "plain")]["mb_s"]
        task = by[(size, "jsonl-task")]["stream_mb_s"] / by[(size, "plain")]["mb_s"]
        print(
            f"  {size} MB: jsonl throughput {share:.0%} of the plain copy (>= 70%): {verdict}; "
            f"streaming alone {streaming:.0%}; NumPy's import on the clock {cold:.0%}; streaming "
            f"in a task {task:.0%}; {stdlib:.0%} of the stdlib copy"
        )
    for writer in ("jsonl", "parquet"):
        peak = by[(large, writer)]["peak_rss_mb"]
        growth = peak - by[(small, writer)]["peak_rss_mb"]
        verdict = "met" if peak < 300 and growth <= 50 else "MISSED"
        print(f"  {writer}: peak RSS {peak:.0f} MB at {large} MB (< 300), {growth:+.0f} MB: {verdict}")


if __name__ == "__main__":
    main()
