"""Many questions about one long document: the document goes into a context cache once, and every
request in the batch refers to it, so its tokens are billed at the cached rate instead of once per
question. The cache is deleted afterwards by a teardown task, even when the batch fails.

Variables (optional): ``gemini_cached_document`` (a text file on any object storage; default: the
sample handbook beside this file) and ``gemini_cached_output_dir`` (default ``/tmp/gemini-cached``).
"""

from __future__ import annotations

import datetime
from pathlib import Path

from airflow.sdk import dag, task

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator
from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
from airflow_provider_gemini.transfers.results_to_storage import GeminiBatchResultsToStorageOperator

MODEL = "gemini-2.5-flash"  # a cache belongs to one model: the batch must use the same
SAMPLE_DOCUMENT = Path(__file__).parent / "data" / "store_handbook.md"
DOCUMENT = "{{ var.value.get('gemini_cached_document', '" + str(SAMPLE_DOCUMENT) + "') }}"
OUTPUT_DIR = "{{ var.value.get('gemini_cached_output_dir', '/tmp/gemini-cached') }}"
QUESTIONS = {
    "shipping-cutoff": "Until what time must an order be placed to leave the warehouse the same day?",
    "express-gas": "Can an order with a gas canister be sent by express delivery?",
    "return-window": "How long does a customer have to return an unused item?",
    "socks": "Can socks be returned once the packaging is opened?",
    "warranty-own-brand": "How long is the warranty on own-brand products?",
    "zip-repair": "What does the workshop charge to mend a zip outside the warranty?",
    "points": "How much is one hundred loyalty points worth?",
    "goodwill": "Up to what amount may an agent grant a goodwill voucher without approval?",
}


@dag(schedule=None, start_date=datetime.datetime(2026, 11, 1), catchup=False, tags=["gemini", "example"])
def gemini_batch_cached_context():
    @task
    def create_cache(document: str) -> str:
        from airflow.sdk import ObjectStoragePath

        from airflow_provider_gemini.hooks.gemini import GeminiHook

        return GeminiHook().create_cached_content(
            MODEL,
            contents=ObjectStoragePath(document).read_text(),
            system_instruction="Answer from the handbook only, in one sentence. Say so if it has no answer.",
            ttl_seconds=6 * 3600,  # longer than the batch may take; deleted as soon as the run ends
            display_name="northwind-handbook",
        )

    @task
    def delete_cache(cache_name: str) -> None:
        from airflow_provider_gemini.hooks.gemini import GeminiHook

        GeminiHook().delete_cached_content(cache_name)

    cache = create_cache(DOCUMENT)
    create = GeminiBatchCreateOperator(
        task_id="create",
        model=MODEL,
        records=[{"id": key, "question": text} for key, text in QUESTIONS.items()],
        prompt_template="{question}",
        cached_content=cache,
    )
    wait = GeminiBatchSensor(task_id="wait", batch_name=create.output["batch_name"], deferrable=True)
    store = GeminiBatchResultsToStorageOperator(
        task_id="store",
        batch_name=create.output["batch_name"],
        destination=OUTPUT_DIR + "/answers-{{ (logical_date or dag_run.run_after) | ds }}.csv",
        output_format="csv",
    )
    create >> wait >> store >> delete_cache(cache).as_teardown(setups=cache)


gemini_batch_cached_context()
