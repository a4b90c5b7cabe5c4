"""Storing a job's results: our transfer in each output format beside a plain copy of the same bytes.

For each size, a SUCCEEDED job with a synthesized result file is made in the emulator (its own
process); each writer then runs in a fresh process, so its peak RSS is its own. The copy's speed
varies a lot from run to run on a small machine, so one untimed copy first warms the page cache
(the served file, the destination's file system) for everyone, then every writer runs ``--rounds``
times, interleaved with the copy, and each is judged by its median run against the copy's median
run (a lucky or a disturbed run moves neither; bests are printed beside):

- stdlib: the file read with ``urllib`` into one buffer (``readinto``) and written to a local file:
  the baseline, the fastest plain streaming copy we know in Python;
- plain: an httpx streaming copy (the SDK's own transport), the second baseline;
- scan: the transfers' own read (the hook's whole-line blocks, read ahead in a thread) written out,
  each line also read by msgspec as raw JSON (nothing built): the least any transfer that reads
  every line can do, the ceiling of the formats below on this machine;
- jsonl, flat_jsonl, csv, parquet: ``GeminiBatchResultsToStorageOperator`` with that
  ``output_format`` to a local file (MB/s of the result file over the whole ``execute``, job lookup
  included; "streaming" over the pass over the results alone);
- sdk (on request): ``client.files.download`` into memory, then written out (the google provider's
  approach).

One-off imports (httpx, the SDK, pyarrow) are paid before the clock starts, for every writer. Prints
figures side by side: each format's throughput as a share of the stdlib copy's (the targets: jsonl
>= 70%, the flat formats >= 35%) and of the httpx copy's, the scan's as their ceiling, and peak RSS
(the highest of the rounds; target < 300 MB and flat with size); then the same for an embeddings
job's results (``--embedding-mb``, 768 dimensions: a vector column, Parquet's a fixed-size list of
float32); asserts nothing.

    .venv/bin/python benchmarks/results_transfer.py [--sizes-mb 100 1000] [--rounds 5] [--writers stdlib ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._emulator_process import connection_env, emulator_process

MB = 1_000_000
OPERATOR_WRITERS = ("jsonl", "flat_jsonl", "csv", "parquet")
WRITERS = ("stdlib", "plain", "scan", *OPERATOR_WRITERS, "sdk")
DEFAULT_WRITERS = ("stdlib", "plain", "scan", *OPERATOR_WRITERS)
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
        transfer = operator._transfer
        streaming: list[float] = []

        def timed_transfer(*args: Any, **kwargs: Any) -> Any:  # the pass over the results alone
            began = time.perf_counter()
            try:
                return transfer(*args, **kwargs)
            finally:
                streaming.append(time.perf_counter() - began)

        operator._transfer = timed_transfer  # type: ignore[method-assign]
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
    elif writer == "scan":
        import msgspec

        from airflow_provider_gemini.batch.overlap import read_ahead

        lines = msgspec.json.Decoder(msgspec.Raw)
        start_rss, start = rss_mb(), time.perf_counter()
        with open(target, "wb") as sink:
            for block in read_ahead(hook.iter_result_blocks(job.result_file)):
                sink.write(block)
                lines.decode_lines(block)
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


def child(writer: str, url: str, batch: str, out_dir: str, env: dict[str, str]) -> dict[str, float]:
    """One writer's run in a fresh process; what it wrote is removed after."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", writer, url, batch, out_dir],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    for leftover in Path(out_dir).iterdir():
        leftover.unlink()
    return json.loads(out.stdout.strip().splitlines()[-1])


def embedding_rows(
    url: str, out_dir: str, env: dict[str, str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """The stdlib copy and every format, on an embeddings job's result file (vectors, no text)."""
    from airflow_provider_gemini.testing.emulator import EmulatorClient

    batch = EmulatorClient(url).synthesize_job(
        args.embedding_mb * MB, model="gemini-embedding-001", embedding_dimensions=args.embedding_dimensions
    )
    writers = ("stdlib", *OPERATOR_WRITERS)
    child("stdlib", url, batch, out_dir, env)  # warms the page cache; not counted
    runs: dict[str, list[dict[str, float]]] = {writer: [] for writer in writers}
    for _ in range(args.rounds):
        for writer in writers:
            runs[writer].append(child(writer, url, batch, out_dir, env))
    return [summary(args.embedding_mb, writer, runs[writer]) for writer in writers]


def summary(size: int, writer: str, runs: list[dict[str, float]]) -> dict[str, Any]:
    """A writer's rounds in one row: best and median speeds, the highest memory."""
    return {
        "size": size,
        "writer": writer,
        "written_mb": runs[0]["written_mb"],
        "best": max(r["mb_s"] for r in runs),
        "median": statistics.median(r["mb_s"] for r in runs),
        "stream_best": max(r["stream_mb_s"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "rss_delta_mb": max(r["rss_delta_mb"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writers", nargs="+", choices=WRITERS, default=list(DEFAULT_WRITERS))
    parser.add_argument("--child", nargs=4, metavar=("WRITER", "URL", "BATCH", "DIR"))
    parser.add_argument(
        "--embedding-mb", type=int, default=1000, help="an embeddings job's results (0: none)"
    )
    parser.add_argument("--embedding-dimensions", type=int, default=768)
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
            child("stdlib", url, batch, out_dir, env)  # warms the page cache for all; not counted
            runs: dict[str, list[dict[str, float]]] = {writer: [] for writer in args.writers}
            for _ in range(args.rounds):
                for writer in args.writers:
                    runs[writer].append(child(writer, url, batch, out_dir, env))
            rows += [summary(size, writer, runs[writer]) for writer in args.writers]
        if args.embedding_mb:
            vectors = embedding_rows(url, out_dir, env, args)

    print(
        f"\n{'results':>8} {'writer':<11}{'written MB':>11}{'best MB/s':>10}{'median MB/s':>12}"
        f"{'streaming MB/s':>16}{'peak RSS MB':>13}{'RSS growth MB':>15}"
    )
    for r in rows:
        figures = (
            f"{r['written_mb']:>11.0f}{r['best']:>10.0f}{r['median']:>12.0f}{r['stream_best']:>16.0f}"
            f"{r['peak_rss_mb']:>13.0f}{r['rss_delta_mb']:>15.0f}"
        )
        print(f"{r['size']:>6}MB {r['writer']:<11}{figures}")
    by = {(r["size"], r["writer"]): r for r in rows}
    small, large = min(args.sizes_mb), max(args.sizes_mb)
    print(
        f"\nthroughput as a share of the stdlib copy of the same bytes: median of {args.rounds} runs against "
        "the copy's median (target), and best against best:"
    )
    for size in args.sizes_mb:
        copy, httpx_copy = by.get((size, "stdlib")), by.get((size, "plain"))
        for writer in ("scan", *TARGETS):
            if copy is None or (size, writer) not in by:
                continue
            share = by[(size, writer)]["median"] / copy["median"]
            best = by[(size, writer)]["best"] / copy["best"]
            if writer in TARGETS:
                verdict = "met" if share >= TARGETS[writer] else "MISSED"
                figures = f"{share:>5.0%} (>= {TARGETS[writer]:.0%}): {verdict:<7}best {best:>4.0%}"
            else:  # the scan: no format that reads every line gets past it
                figures = f"{share:>5.0%} (the ceiling)   best {best:>4.0%}"
            if httpx_copy is not None:
                figures += f"   of the httpx copy: {by[(size, writer)]['median'] / httpx_copy['median']:.0%}"
            print(f"  {size:>5} MB {writer:<11}{figures}")
    if args.embedding_mb:
        print(
            f"\nan embeddings job's results ({args.embedding_mb} MB, {args.embedding_dimensions} dimensions, "
            f"median of {args.rounds} runs), beside the stdlib copy of the same bytes; peak RSS < 300 MB:"
        )
        copy = next(r for r in vectors if r["writer"] == "stdlib")
        for r in vectors:
            share = r["median"] / copy["median"]
            verdict = "" if r["writer"] == "stdlib" else ("met" if r["peak_rss_mb"] < 300 else "MISSED")
            print(
                f"  {r['writer']:<11}{r['median']:>7.0f} MB/s ({share:>4.0%} of the copy)"
                f"{r['peak_rss_mb']:>7.0f} MB peak RSS  {verdict}"
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
