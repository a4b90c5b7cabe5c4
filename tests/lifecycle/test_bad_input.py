"""Bad input fails the create task with file, line and reason, before any upload or paid call."""

from __future__ import annotations

import pytest

from tests.airflow_helpers import dag_bag, load_dag, run_dag, task_states, write_dag, xcom_values
from tests.conftest import DAGS_FOLDER
from tests.lifecycle.dag_sources import create_and_wait

pytestmark = pytest.mark.usefixtures("airflow_db", "gemini_connection")

GOOD = b'{"key": "a", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}\n'
GOOD_B = b'{"key": "b", "request": {"contents": [{"parts": [{"text": "hello"}]}]}}\n'

BAD_FILES = {
    "bad_json": (GOOD + b'{"key": "b", "request": {"contents": [}\n', "line 2: invalid JSON"),
    "missing_key": (
        GOOD + b'{"request": {"contents": [{"parts": [{"text": "x"}]}]}}\n',
        'line 2: missing "key"',
    ),
    "duplicate_key": (GOOD + GOOD_B + GOOD, 'line 3: duplicate key "a" (first seen on line 1)'),
    "missing_contents": (GOOD + b'{"key": "b", "request": {}}\n', 'line 2: request has no "contents"'),
    "missing_request": (GOOD + b'{"key": "b"}\n', "line 2:"),
    "not_utf8": (
        GOOD + b'{"key": "b", "request": {"contents": [{"parts": [{"text": "caf\xe9"}]}]}}\n',
        "line 2: not valid UTF-8",
    ),
    "not_an_object": (GOOD + b"[1, 2, 3]\n", "line 2:"),
}


def _assert_nothing_paid(emulator):
    calls = emulator.stats()["calls"]
    assert calls["upload_starts"] == 0
    assert calls["uploads"] == 0
    assert calls["creates"] == 0
    assert emulator.stats()["jobs_created"] == 0


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_file_fails_before_any_paid_call(gemini_emulator, tmp_path, capfd, case):
    content, expected = BAD_FILES[case]
    path = tmp_path / f"{case}.jsonl"
    path.write_bytes(content)
    dag_id = f"bad_{case}"
    dag_run = run_dag(dag_id, create_and_wait(dag_id, create_kwargs={"input_path": str(path)}))
    assert task_states(dag_run) == {"create": "failed"}
    captured = capfd.readouterr()
    assert f"{path}" in captured.out + captured.err
    assert expected in captured.out + captured.err
    _assert_nothing_paid(gemini_emulator)


def test_missing_input_file_is_named(gemini_emulator, tmp_path, capfd):
    path = tmp_path / "nowhere.jsonl"
    dag_run = run_dag(
        "bad_missing_file", create_and_wait("bad_missing_file", create_kwargs={"input_path": str(path)})
    )
    assert task_states(dag_run) == {"create": "failed"}
    captured = capfd.readouterr()
    assert f"{path}: no such file" in captured.out + captured.err
    _assert_nothing_paid(gemini_emulator)


def test_oversize_input_is_refused(gemini_emulator, tmp_path, capfd, monkeypatch):
    from airflow_provider_gemini.batch import inputs

    # dag.test() runs the task in this process: the limit is made small here, and restored after.
    # (Setting it in the DAG file would leak: every later dag.test() parses the whole dags folder.)
    monkeypatch.setattr(inputs, "MAX_INLINE_BYTES", 200)
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(GOOD.replace(b'"a"', f'"k{i}"'.encode()) for i in range(10)))
    source = create_and_wait("bad_oversize", create_kwargs={"input_path": str(path), "input_mode": "inline"})
    dag_run = run_dag("bad_oversize", source)
    assert task_states(dag_run) == {"create": "failed"}
    captured = capfd.readouterr()
    assert "inline limit" in captured.out + captured.err
    _assert_nothing_paid(gemini_emulator)


def test_record_missing_a_template_field(gemini_emulator, capfd):
    records = [{"id": "1", "name": "a"}, {"id": "2"}]
    kwargs = {"records": records, "prompt_template": "Describe {name}", "key_field": "id"}
    dag_run = run_dag("bad_record", create_and_wait("bad_record", create_kwargs=kwargs))
    assert task_states(dag_run) == {"create": "failed"}
    captured = capfd.readouterr()
    assert "record 2" in captured.out + captured.err
    assert "name" in captured.out + captured.err
    _assert_nothing_paid(gemini_emulator)


def test_request_without_contents_in_a_request_list(gemini_emulator, capfd):
    kwargs = {"requests": [{"contents": [{"parts": [{"text": "ok"}]}]}, {"generationConfig": {}}]}
    dag_run = run_dag("bad_requests", create_and_wait("bad_requests", create_kwargs=kwargs))
    assert task_states(dag_run) == {"create": "failed"}
    captured = capfd.readouterr()
    assert 'request has no "contents"' in captured.out + captured.err
    _assert_nothing_paid(gemini_emulator)


@pytest.mark.parametrize(
    ("dag_id", "kwargs", "expected"),
    [
        ("bad_two_inputs", {"input_path": "a.jsonl", "requests": [{"contents": []}]}, "exactly one input"),
        ("bad_no_input", {}, "Give one input"),
        ("bad_no_template", {"records": [{"id": 1}]}, "records need a prompt_template"),
    ],
)
def test_wrong_arguments_are_a_dag_import_error(gemini_emulator, dag_id, kwargs, expected):
    write_dag(dag_id, create_and_wait(dag_id, create_kwargs=kwargs))
    try:
        bag = dag_bag(str(DAGS_FOLDER / f"{dag_id}.py"))
        assert expected in "".join(bag.import_errors.values())
        with pytest.raises(AssertionError):
            load_dag(dag_id)
    finally:
        (DAGS_FOLDER / f"{dag_id}.py").unlink()
    _assert_nothing_paid(gemini_emulator)


EMPTY_FILES = {"empty_file": b"", "only_blank_lines": b"\n\n  \n"}


@pytest.mark.parametrize("case", sorted(EMPTY_FILES))
def test_an_empty_input_skips_the_create_and_what_waits_on_it(gemini_emulator, tmp_path, capfd, case):
    path = tmp_path / f"{case}.jsonl"
    path.write_bytes(EMPTY_FILES[case])
    source = create_and_wait(f"empty_{case}", create_kwargs={"input_path": str(path)}, sensor_kwargs={})
    dag_run = run_dag(f"empty_{case}", source)
    assert task_states(dag_run) == {"create": "skipped", "wait": "skipped"}
    assert (
        "no requests: the input is empty: nothing to send, skipping (skip_on_empty)" in capfd.readouterr().out
    )
    _assert_nothing_paid(gemini_emulator)


def test_an_empty_input_fails_without_retry_when_asked_to(gemini_emulator, tmp_path, capfd):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    kwargs = {"input_path": str(path), "skip_on_empty": False}
    dag_run = run_dag("empty_fails", create_and_wait("empty_fails", create_kwargs=kwargs, retries=2))
    assert task_states(dag_run) == {"create": "failed"}
    assert dag_run.get_task_instance("create").try_number == 1
    assert "Failing without retry: a retry would read the same input" in capfd.readouterr().out
    _assert_nothing_paid(gemini_emulator)


RECORDS = {"records": [{"id": 1, "name": "kettle"}], "prompt_template": "Describe {name}", "key_field": "id"}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "gemini-2.5-flsh",
            "Model models/gemini-2.5-flsh does not exist for this connection (Gemini API error 404",
        ),
        ("gemini-2.0-flash-live-001", "does not serve batch mode (it supports bidiGenerateContent)"),
    ],
)
def test_a_model_the_api_does_not_have_for_batch_fails_before_the_upload_without_retry(
    gemini_emulator, capfd, model, expected
):
    dag_id = f"bad_model_{model.replace('-', '_').replace('.', '_')}"
    kwargs = {**RECORDS, "model": model, "input_mode": "file"}
    dag_run = run_dag(dag_id, create_and_wait(dag_id, create_kwargs=kwargs, retries=2))
    assert task_states(dag_run) == {"create": "failed"}
    assert dag_run.get_task_instance("create").try_number == 1
    out = capfd.readouterr().out
    assert expected in out
    assert "Nothing was uploaded or paid." in out
    _assert_nothing_paid(gemini_emulator)


def test_an_input_error_is_not_retried(gemini_emulator, tmp_path, capfd):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(BAD_FILES["bad_json"][0])
    dag_run = run_dag(
        "bad_no_retry", create_and_wait("bad_no_retry", create_kwargs={"input_path": str(path)}, retries=2)
    )
    assert task_states(dag_run) == {"create": "failed"}
    assert dag_run.get_task_instance("create").try_number == 1
    _assert_nothing_paid(gemini_emulator)


def test_a_null_prompt_field_fails_before_paying_or_is_handled_by_the_policy(gemini_emulator, capfd):
    records = [{"id": 1, "subject": "Refund"}, {"id": 2, "subject": None}]
    kwargs = {"records": records, "prompt_template": "Subject: {subject}", "key_field": "id"}
    dag_run = run_dag("bad_null", create_and_wait("bad_null", create_kwargs=kwargs))
    assert task_states(dag_run) == {"create": "failed"}
    assert 'record 2: field "subject" is null' in capfd.readouterr().out
    _assert_nothing_paid(gemini_emulator)

    skipping = {**kwargs, "null_policy": "skip_row"}
    dag_run = run_dag("null_skip", create_and_wait("null_skip", create_kwargs=skipping))
    assert task_states(dag_run) == {"create": "success"}
    result = xcom_values("null_skip", dag_run.run_id)[("create", "return_value")]
    assert (result["request_count"], result["null_records"]) == (1, 1)
    assert (
        "1 records had a null in a prompt field: left out (null_policy='skip_row')" in capfd.readouterr().out
    )


def test_an_invalid_response_schema_fails_before_paying(gemini_emulator, capfd):
    schema = {"type": "OBJECT", "properties": {"priority": {"type": "STRNG"}}}
    kwargs = {
        **RECORDS,
        "generation_config": {"response_mime_type": "application/json", "response_schema": schema},
    }
    dag_run = run_dag("bad_schema", create_and_wait("bad_schema", create_kwargs=kwargs, retries=1))
    assert task_states(dag_run) == {"create": "failed"}
    assert dag_run.get_task_instance("create").try_number == 1
    assert (
        "generation_config: response_schema.properties.priority.type 'STRNG' is not a type"
        in capfd.readouterr().out
    )
    _assert_nothing_paid(gemini_emulator)
