from airflow_provider_gemini.batch.jobs import BatchJobInfo, BatchState, BatchStats

RUNNING_OP = {
    "name": "batches/abc",
    "metadata": {
        "displayName": "enrich-1f2e",
        "model": "models/gemini-2.5-flash",
        "state": "BATCH_STATE_RUNNING",
        "createTime": "2026-11-25T01:00:00Z",
        "batchStats": {
            "requestCount": "5000",
            "successfulRequestCount": "1197",
            "failedRequestCount": "3",
            "pendingRequestCount": "3800",
        },
    },
    "done": False,
}


def test_state_parse_accepts_every_spelling():
    assert BatchState.parse("BATCH_STATE_RUNNING") is BatchState.RUNNING
    assert BatchState.parse("JOB_STATE_SUCCEEDED") is BatchState.SUCCEEDED
    assert BatchState.parse("cancelled") is BatchState.CANCELLED
    assert BatchState.parse(None) is BatchState.UNSPECIFIED
    assert BatchState.parse("SOMETHING_NEW") is BatchState.UNSPECIFIED


def test_terminal_states_are_exactly_the_five_endings():
    terminal = {s for s in BatchState if s.is_terminal}
    assert terminal == {
        BatchState.SUCCEEDED,
        BatchState.PARTIALLY_SUCCEEDED,
        BatchState.FAILED,
        BatchState.CANCELLED,
        BatchState.EXPIRED,
    }
    assert {s for s in BatchState if s.has_results} == {BatchState.SUCCEEDED, BatchState.PARTIALLY_SUCCEEDED}
    assert BatchState.parse("JOB_STATE_PARTIALLY_SUCCEEDED") is BatchState.PARTIALLY_SUCCEEDED


def test_operation_keeps_batch_stats_sent_as_strings():
    job = BatchJobInfo.from_operation(RUNNING_OP)
    assert job.name == "batches/abc"
    assert job.state is BatchState.RUNNING
    assert job.display_name == "enrich-1f2e"
    assert job.stats == BatchStats(request_count=5000, succeeded=1197, failed=3, pending=3800)
    assert job.stats.done == 1200


def test_operation_reads_result_file_inline_responses_and_error():
    done = {
        "name": "batches/x",
        "metadata": {"state": "BATCH_STATE_SUCCEEDED", "output": {"responsesFile": "files/out"}},
    }
    assert BatchJobInfo.from_operation(done).result_file == "files/out"
    inline = {
        "name": "batches/y",
        "metadata": {
            "state": "BATCH_STATE_SUCCEEDED",
            "output": {"inlinedResponses": {"inlinedResponses": [{"metadata": {"key": "a"}}]}},
        },
    }
    assert BatchJobInfo.from_operation(inline).inlined_responses == [{"metadata": {"key": "a"}}]
    failed = {
        "name": "batches/z",
        "metadata": {"state": "BATCH_STATE_FAILED"},
        "error": {"code": 3, "message": "quota exceeded", "status": "RESOURCE_EXHAUSTED"},
    }
    assert BatchJobInfo.from_operation(failed).error == "quota exceeded (RESOURCE_EXHAUSTED)"


def test_dict_round_trip_is_json_plain():
    job = BatchJobInfo.from_operation(RUNNING_OP)
    data = job.to_dict()
    assert data["state"] == "RUNNING"
    assert data["stats"]["failed"] == 3
    assert "inlined_responses" not in data
    assert BatchJobInfo.from_dict(data) == job
