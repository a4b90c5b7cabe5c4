from airflow_provider_gemini.hooks.gemini import GeminiHook


def test_synthesized_job_has_a_downloadable_result_file(gemini_emulator, gemini_connection):
    name = gemini_emulator.synthesize_job(200_000, line_bytes=500)
    job = GeminiHook().get_batch(name)
    assert job.state.value == "SUCCEEDED"
    lines = list(GeminiHook().iter_result_lines(job.result_file))
    assert len(lines) == job.stats.request_count == job.stats.succeeded
    assert sum(len(line) + 1 for line in lines) >= 200_000
