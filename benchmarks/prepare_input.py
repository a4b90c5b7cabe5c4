"""Preparing a batch input file (validate, normalise, fingerprint) beside a plain copy of the same bytes.

For each size a JSONL file of ``{"key", "request"}`` lines is written once (prompts of about 700
characters in several scripts, a generation config each: about 950 bytes a request, 210 000
requests in 200 MB). Each step then runs in a fresh process, so its peak RSS is its own:

- copy: the file read in 1 MiB blocks and written out, the floor any preparation pays;
- prepare: ``prepare_from_file`` as the create operator calls it for ``input_path``;
- prepare+options: the same with ``system_instruction`` and ``generation_config`` set, so every
  request is decoded, merged and re-encoded (at the smallest size only: the options lengthen every
  request, and 2 GB of input would pass the API's limit).

Prints MB/s and peak RSS side by side, ``prepare`` as a share of the copy, the target (>= 180 MB/s,
peak RSS flat in input size) and version 0.1's figure for the same 200 MB on one core (59 MB/s);
asserts nothing.

    .venv/bin/python benchmarks/prepare_input.py [--sizes-mb 200 2000] [--steps copy prepare ...]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MB = 1_000_000
STEPS = ("copy", "prepare", "prepare+options")
TARGET_MB_S = 180
VERSION_0_1_MB_S = 59  # 250 000 requests, 200 MB, one core, before the block decoder
PROSE = (
    "the order arrived late and the box was damaged refund please shipping invoice "
    "café naïve façade Straße größer 東京 配送 返品 заказ доставка возврат 😀 🚚"
)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_input(path: Path, size_bytes: int) -> int:
    """A deterministic input of about ``size_bytes``: 1 000 distinct requests, each key unique."""
    rng = random.Random(7)
    words = PROSE.split()
    bodies = []
    for _ in range(1000):
        text = " ".join(rng.choice(words) for _ in range(110))
        request = {
            "contents": [{"role": "user", "parts": [{"text": text}]}],
            "generationConfig": {"temperature": 0.2, "maxOutputTokens": 256},
        }
        bodies.append(json.dumps(request, ensure_ascii=False).encode())
    written = count = 0
    with open(path, "wb") as sink:
        while written < size_bytes:
            lines = [
                b'{"key": "row-%09d", "request": %s}\n' % (count + i, bodies[(count + i) % 1000])
                for i in range(10_000)
            ]
            block = b"".join(lines)
            if written + len(block) > size_bytes:  # stop at the size: 2 GB is the API's limit
                block = block[: block.rfind(b"\n", 0, size_bytes - written) + 1]
                lines = lines[: block.count(b"\n")]
                if not lines:
                    break
            sink.write(block)
            written += len(block)
            count += len(lines)
    return count


def run(step: str, source: str, out_dir: str) -> dict[str, float]:
    from airflow_provider_gemini.batch import inputs

    options = inputs.RequestOptions(
        system_instruction="Classify the ticket.",
        generation_config={"responseMimeType": "application/json", "temperature": 0.1},
    )
    start_rss, start = rss_mb(), time.perf_counter()
    if step == "copy":
        buffer = memoryview(bytearray(1 << 20))
        with open(source, "rb") as handle, open(Path(out_dir) / "copy.jsonl", "wb") as sink:
            while size := handle.readinto(buffer):
                sink.write(buffer[:size])
    else:
        with open(source, "rb") as handle:
            inputs.prepare_from_file(
                handle,
                source=source,
                options=options if step == "prepare+options" else None,
                workdir=out_dir,
            )
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": rss_mb(), "rss_delta_mb": rss_mb() - start_rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--child", nargs=3, metavar=("STEP", "SOURCE", "DIR"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run(*args.child)))
        return

    rows = []
    with tempfile.TemporaryDirectory() as work:
        source, out_dir = Path(work) / "input.jsonl", Path(work) / "out"
        out_dir.mkdir()
        for size in args.sizes_mb:
            requests = write_input(source, size * MB)
            input_mb = source.stat().st_size / MB
            for step in args.steps:
                if step == "prepare+options" and size != min(args.sizes_mb):
                    continue  # the options lengthen every request: 2 GB of input would pass the limit
                out = subprocess.run(
                    [sys.executable, __file__, "--child", step, str(source), str(out_dir)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(
                    {"size": size, "step": step, "requests": requests, "input_mb": input_mb, **figures}
                )
                for leftover in out_dir.iterdir():
                    leftover.unlink()

    print(f"\n{'input':>8} {'requests':>10}  {'step':<16}{'MB/s':>7}{'seconds':>9}{'peak RSS MB':>13}")
    for r in rows:
        mb_s = r["input_mb"] / r["seconds"]
        print(
            f"{r['size']:>6}MB {r['requests']:>10}  {r['step']:<16}{mb_s:>7.0f}{r['seconds']:>9.2f}"
            f"{r['peak_rss_mb']:>13.0f}"
        )
    by = {(r["size"], r["step"]): r for r in rows}
    print(f"\nversion 0.1: {VERSION_0_1_MB_S} MB/s for 200 MB on one core; target >= {TARGET_MB_S} MB/s")
    for size in args.sizes_mb:
        if (size, "prepare") not in by:
            continue
        prepared = by[(size, "prepare")]
        mb_s = prepared["input_mb"] / prepared["seconds"]
        share = ""
        if (size, "copy") in by:
            share = f", {by[(size, 'copy')]['seconds'] / prepared['seconds']:.0%} of the copy's throughput"
        verdict = "met" if mb_s >= TARGET_MB_S else "MISSED"
        speedup = mb_s / VERSION_0_1_MB_S
        print(f"  {size:>5} MB prepare: {mb_s:.0f} MB/s, {speedup:.1f}x version 0.1{share}: {verdict}")
    sizes = sorted({size for size, step in by if step == "prepare"})
    if len(sizes) > 1:
        growth = by[(sizes[-1], "prepare")]["peak_rss_mb"] - by[(sizes[0], "prepare")]["peak_rss_mb"]
        verdict = "met" if abs(growth) <= 50 else "MISSED"
        print(
            f"  peak RSS from {sizes[0]} MB to {sizes[-1]} MB of input: {growth:+.0f} MB "
            f"(flat within 50 MB): {verdict}"
        )


if __name__ == "__main__":
    main()
