"""The example DAGs parse, and the demo (`make demo`) really enriches the table through Airflow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.airflow_helpers import dag_bag

ROOT = Path(__file__).resolve().parent.parent


def test_example_dags_parse_without_import_errors():
    bag = dag_bag(str(ROOT / "example_dags"))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == [
        "gemini_batch_basic",
        "gemini_batch_cached_context",
        "gemini_batch_embeddings",
        "gemini_batch_enrichment",
        "gemini_batch_sharded",
    ]


def test_demo_enriches_rows_and_prints_the_manifest():
    out = subprocess.run(
        [sys.executable, str(ROOT / "demo" / "run_demo.py")], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    enriched = re.findall(r"^  p0\d  .+ (playful|premium|practical) ", text, flags=re.MULTILINE)
    assert len(enriched) == 7  # every product without a headline got one; p07 kept its own
    assert "Sleep cool on washed linen" in text
    assert "rows 7, succeeded 7, failed 0, missing 0" in text
    tokens = re.search(r"'total': (\d+)", text)
    assert tokens is not None
    assert int(tokens.group(1)) > 0
    batch, standard = map(
        float, re.search(r"batch price ([\d.]+) USD, at the standard price ([\d.]+)", text).groups()
    )
    assert 0 < batch < standard
