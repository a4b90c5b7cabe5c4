"""Submits a Gemini batch job once per task instance, however often the task runs."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow.configuration import conf
from airflow.sdk import BaseOperator

from airflow_provider_gemini._compat import (
    XCOM_ACCEPTS_NONE,
    AirflowFailException,
    AirflowSkipException,
    push_fields,
    task_state_store,
)
from airflow_provider_gemini.batch.errors import (
    BatchInputError,
    EmptyInputError,
    GeminiApiError,
    is_transient,
)
from airflow_provider_gemini.batch.events import BatchEvent
from airflow_provider_gemini.batch.identity import (
    display_name_for,
    fingerprint_text,
    job_identity,
    same_task_instance,
)
from airflow_provider_gemini.batch.jobs import (
    BATCH_EMBED_METHOD,
    BATCH_GENERATE_METHOD,
    BatchJobInfo,
    BatchState,
)
from airflow_provider_gemini.batch.polling import PollDecider
from airflow_provider_gemini.endings import cancel_best_effort, finish_event
from airflow_provider_gemini.lineage import never_fails
from airflow_provider_gemini.links.batch import GeminiBatchJobLink, batch_console_url
from airflow_provider_gemini.storage import storage_path
from airflow_provider_gemini.triggers.batch import defer_wait

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

    from airflow_provider_gemini.batch import inputs
    from airflow_provider_gemini.batch.inputs import PreparedInput
    from airflow_provider_gemini.hooks.gemini import GeminiHook

# Where the job name is kept across tries (Airflow 3.3's task_state_store). Renaming it would make
# in-flight retries forget their job, so it stays.
STATE_KEY = "gemini_batch_name"
SUBMITTED_KEY = "gemini_batch_submitted"
DEFAULT_REATTACH_STATES = ("PENDING", "RUNNING", "SUCCEEDED", "PARTIALLY_SUCCEEDED")
INPUT_ARGS = ("input_path", "records", "sql", "requests", "input_file_name")
# A job that ended badly is not re-attached to (see reattach_states), so clearing the task pays for a new one.
# How far before an intent the account's list is read: the worker's clock and the API's may disagree.
CLOCK_MARGIN = 15 * 60
INPUT_FAILURE = "Failing without retry: a retry would read the same input. Nothing was uploaded or paid."
AFTER_FAILURE = "the job has ended and will not change; clearing this task submits a new job."


class GeminiBatchCreateOperator(BaseOperator):
    """Validates a batch input, uploads it and creates a Gemini batch job, never twice for one task instance.

    The input is streamed once and checked line by line, and the model looked up, before anything is
    paid for; an invalid input fails without retry (a retry would read the same input). The job's
    display name carries a deterministic identity (dag, task, run, map index and a fingerprint of
    the input); a retry, a cleared task or a restarted worker finds that job and re-attaches to it.

    Give exactly one input:

    :param input_path: a JSONL file of ``{"key", "request"}`` lines, local or on any object storage
        Airflow supports (``s3://``, ``gs://`` ...), read with ``input_conn_id`` (templated).
    :param records: a list of dicts (or an XComArg); each becomes a request from ``prompt_template``.
    :param sql: a query whose rows become records, read in chunks on ``sql_conn_id`` (any common.sql
        connection; a server-side cursor on PostgreSQL), never through XCom (templated).
    :param sql_conn_id: the connection ``sql`` runs on.
    :param sql_parameters: parameters of ``sql`` (templated).
    :param prompt_template: Python format string (``"Describe {name}"``) or a callable(record) -> str.
    :param key_field: the record field used as the request key.
    :param null_policy: a null in a field the template names: ``fail`` (default), ``skip_row`` (the
        record is left out) or ``empty`` (filled with ""); never the text "None" in a paid prompt.
    :param skip_on_empty: an input without requests (a quiet night's empty table) skips the task and
        its downstream tasks instead of failing (default True).
    :param requests: a list of GenerateContentRequest dicts, with or without ``{"key", "request"}``.
    :param input_file_name: an already uploaded ``files/...`` (used as is, not validated).

    Merged into every request that does not set them itself (SDK types or their dict form):

    :param system_instruction: a str or Content.
    :param generation_config: e.g. ``{"response_mime_type": "application/json", "response_schema": ...}``.
    :param tools: e.g. ``[{"google_search": {}}]``.
    :param cached_content: a context cache name, ``cachedContents/...``.
    :param safety_settings: a list of safety settings.

    :param model: the model, ``gemini-2.5-flash`` or ``models/gemini-2.5-flash`` (templated).
    :param input_mode: ``auto`` (inline under the 20 MB limit, else a file), ``inline`` or ``file``.
    :param display_name_prefix: readable start of the job's display name (default ``dag_id.task_id``).
    :param gemini_conn_id: the Airflow connection to the Gemini API.
    :param force_rerun: submit a new job even if one with this identity exists.
    :param reattach_states: states of an existing job that count as "already submitted".
    :param wait_for_completion: also wait for the job to end (the sensor is the usual way).
    :param deferrable: when waiting, wait in the triggerer.
    :param poll_interval: seconds between polls while waiting.
    :param wait_timeout: seconds to wait at most (None: no limit).
    :param max_failed_request_ratio: when waiting, share of failed requests tolerated (None, the
        default: a job that succeeded passes whatever failed; the results transfer judges it after
        storing every answer, so one setting governs the run).
    :param cancel_on_kill: cancel the job when the task is killed while waiting.
    """

    template_fields: Sequence[str] = (
        "model",
        "input_path",
        "records",
        "sql",
        "sql_parameters",
        "requests",
        "input_file_name",
        "display_name_prefix",
        "system_instruction",
        "generation_config",
        "cached_content",
    )
    template_ext: Sequence[str] = (".sql",)
    operator_extra_links = (GeminiBatchJobLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        model: str,
        input_path: Any = None,
        input_conn_id: str | None = None,
        records: Any = None,
        sql: str | None = None,
        sql_conn_id: str | None = None,
        sql_parameters: Any = None,
        prompt_template: str | Callable[[dict[str, Any]], str] | None = None,
        key_field: str = "id",
        null_policy: Literal["fail", "skip_row", "empty"] = "fail",
        skip_on_empty: bool = True,
        requests: Any = None,
        input_file_name: str | None = None,
        system_instruction: Any = None,
        generation_config: Any = None,
        tools: Any = None,
        cached_content: str | None = None,
        safety_settings: Any = None,
        input_mode: Literal["auto", "inline", "file"] = "auto",
        display_name_prefix: str | None = None,
        gemini_conn_id: str = "gemini_default",
        force_rerun: bool = False,
        reattach_states: Sequence[str] = DEFAULT_REATTACH_STATES,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 30.0,
        wait_timeout: float | None = None,
        max_failed_request_ratio: float | None = None,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        # Each field of the result is its own XCom too, so `create.output["batch_name"]` works.
        kwargs.setdefault("multiple_outputs", True)
        super().__init__(**kwargs)
        # Airflow 3.0 cannot store a None XCom: there this operator pushes the fields itself, without them.
        self._push_fields = bool(self.multiple_outputs) and not XCOM_ACCEPTS_NONE
        if self._push_fields:
            self.multiple_outputs = False
        values = (input_path, records, sql, requests, input_file_name)
        given = [name for name, value in zip(INPUT_ARGS, values, strict=True) if value is not None]
        if len(given) != 1:
            which = f"exactly one input, not {len(given)} ({', '.join(given)})" if given else "one input"
            raise ValueError(f"Give {which}: one of {', '.join(INPUT_ARGS)}")
        if (records is not None or sql is not None) and prompt_template is None:
            raise ValueError(
                "records need a prompt_template (a format string like 'Describe {name}', or a callable)"
            )
        if sql is not None and not sql_conn_id:
            raise ValueError("sql needs sql_conn_id: the connection the query runs on")
        if input_mode not in ("auto", "inline", "file"):
            raise ValueError(f"input_mode must be 'auto', 'inline' or 'file', not {input_mode!r}")
        self.model = model
        self.input_path = input_path
        self.input_conn_id = input_conn_id
        self.records = records
        self.sql = sql
        self.sql_conn_id = sql_conn_id
        self.sql_parameters = sql_parameters
        self.prompt_template = prompt_template
        self.key_field = key_field
        self.null_policy = null_policy
        self.skip_on_empty = skip_on_empty
        self.requests = requests
        self.input_file_name = input_file_name
        self.system_instruction = system_instruction
        self.generation_config = generation_config
        self.tools = tools
        self.cached_content = cached_content
        self.safety_settings = safety_settings
        self.input_mode = input_mode
        self.display_name_prefix = display_name_prefix
        self.gemini_conn_id = gemini_conn_id
        self.force_rerun = force_rerun
        self.reattach_states = frozenset(BatchState.parse(s) for s in reattach_states)
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.max_failed_request_ratio = max_failed_request_ratio
        self.cancel_on_kill = cancel_on_kill
        self._batch_name: str | None = None
        self._result: dict[str, Any] = {}
        self._input_file: str | None = None
        self._in_flight = False  # an earlier try's create was sent and never answered
        self._since: float | None = None  # list the account back to here (an earlier try's intent)

    @cached_property
    def hook(self) -> GeminiHook:
        from airflow_provider_gemini.hooks.gemini import GeminiHook

        return GeminiHook(gemini_conn_id=self.gemini_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="gemini-batch-") as workdir:
            # Validation first: nothing below this line runs for an invalid input.
            try:
                prepared = self._prepare(workdir)
            except BatchInputError as err:
                if isinstance(err, EmptyInputError) and self.skip_on_empty:
                    raise AirflowSkipException(f"{err}: nothing to send, skipping (skip_on_empty)") from None
                raise AirflowFailException(f"{err}. {INPUT_FAILURE}") from None
            submission = self._submission(prepared)
            display_name = self._display_name(context, submission)
            job = None if self.force_rerun else self._find_existing(context, display_name, submission)
            reattached = job is not None
            if job is None:
                job = self._submit_once(context, prepared, display_name, submission)
                if self._in_flight:  # a dead try's create may still land beside this one
                    job = self._keep_earliest(context, job, display_name, submission)
        self._batch_name = job.name
        GeminiBatchJobLink.persist(context, batch_console_url(job.name, self.hook.settings.base_url))
        result = {
            "batch_name": job.name,
            "display_name": display_name,
            "model": job.model or _model_name(self.model),
            "state": job.state.value,
            "request_count": prepared.request_count if prepared else job.stats.request_count,
            "input_file": self._input_file,
            "null_records": prepared.null_records if prepared else 0,
            "reattached": reattached,
        }
        if self.wait_for_completion:
            result = self._wait(context, job, result)
        return self._output(context, result)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after the trigger fired: the create result, with the final state and counts."""
        job = finish_event(
            BatchEvent.from_payload(event),
            self.log,
            after_failure=AFTER_FAILURE,
            cancel=self._cancel_on_timeout,
        )
        # Kept in XCom rather than the defer kwargs, which `dag.test()` does not carry through.
        ti = context["ti"]
        result = ti.xcom_pull(task_ids=self.task_id, key=SUBMITTED_KEY, map_indexes=ti.map_index)
        return self._output(context, {**(result or {}), "state": job["state"], "job": job})

    @property
    def _cancel_on_timeout(self) -> Callable[[str], Any] | None:
        return self.hook.cancel_batch if self.cancel_on_kill else None

    def on_kill(self) -> None:
        # Only reached while waiting on a worker; a deferred wait is cancelled by the trigger's on_kill
        # (Airflow 3.3+; on older releases a deferred job is left running).
        if self.cancel_on_kill and self._batch_name:
            cancel_best_effort(self.hook.cancel_batch, self._batch_name, self.log)

    # -- input ---------------------------------------------------------------------------------

    def _prepare(self, workdir: str) -> PreparedInput | None:
        from airflow_provider_gemini.batch import inputs

        if self.input_file_name is not None:
            self._input_file = self.input_file_name
            return None
        options = self._request_options()
        if self.input_path is not None:
            source = str(self.input_path)
            path = storage_path(self.input_path, self.input_conn_id)
            if not path.exists():
                raise BatchInputError("no such file", source=source)
            with path.open("rb") as handle:
                prepared = inputs.prepare_from_file(handle, source=source, options=options, workdir=workdir)
        elif self.records is not None or self.sql is not None:
            if self.sql is not None:
                from airflow_provider_gemini.sql import sql_records

                assert self.sql_conn_id is not None
                source = f"sql on {self.sql_conn_id}"
                records: Any = sql_records(self.sql_conn_id, self.sql, self.sql_parameters)
            else:
                source = "records"
                records = _as_list(self.records, "records")
            assert self.prompt_template is not None
            prepared = inputs.prepare_from_records(
                records,
                prompt_template=self.prompt_template,
                key_field=self.key_field,
                null_policy=self.null_policy,
                options=options,
                workdir=workdir,
                source=source,
            )
        else:
            source = "requests"
            prepared = inputs.prepare_from_requests(
                _as_list(self.requests, "requests"), options=options, workdir=workdir, source=source
            )
        if self.input_mode == "inline" and not prepared.fits_inline:
            raise BatchInputError(
                f"input is {prepared.size_bytes / 1e6:.1f} MB, over the 20 MB inline limit; "
                "use input_mode='file' or 'auto'",
                source=source,
            )
        self.log.info(
            "Validated %d requests (%.1f MB) from %s; fingerprint %s",
            prepared.request_count,
            prepared.size_bytes / 1e6,
            source,
            prepared.fingerprint[:12],
        )
        if prepared.null_records:
            self.log.warning(
                "%d records had a null in a prompt field: %s (null_policy=%r)",
                prepared.null_records,
                "left out" if self.null_policy == "skip_row" else "filled with empty text",
                self.null_policy,
            )
        return prepared

    #: The requests are EmbedContentRequests (``GeminiBatchEmbedOperator``), not GenerateContentRequests.
    embeddings = False

    def _request_options(self) -> inputs.Options:
        """What is merged into every request (the embeddings operator has its own)."""
        from airflow_provider_gemini.batch import inputs

        return inputs.RequestOptions(
            system_instruction=self.system_instruction,
            generation_config=self.generation_config,
            tools=self.tools,
            cached_content=self.cached_content,
            safety_settings=self.safety_settings,
        )

    # -- identity and re-attaching ---------------------------------------------------------------

    def _submission(self, prepared: PreparedInput | None) -> dict[str, str]:
        """What a job is paid for: the input, the model, and the account (connection and API)."""
        return {
            "input": prepared.fingerprint if prepared else fingerprint_text(str(self.input_file_name)),
            "model": _model_name(self.model),
            "gemini_conn_id": self.gemini_conn_id,
            "api": "vertex_ai" if self.hook.settings.vertexai else "gemini_developer_api",
        }

    def _display_name(self, context: Context, submission: dict[str, str]) -> str:
        map_index = getattr(context["ti"], "map_index", -1)
        fingerprint = fingerprint_text(*(f"{name}={value}" for name, value in sorted(submission.items())))
        identity = job_identity(self.dag_id, self.task_id, context["run_id"], map_index, fingerprint)
        prefix = self.display_name_prefix or f"{self.dag_id}.{self.task_id}"
        return display_name_for(identity, prefix)

    def _find_existing(
        self, context: Context, display_name: str, submission: dict[str, str]
    ) -> BatchJobInfo | None:
        """The job this task instance already submitted for this input, if it is still worth having.

        With a task state store (Airflow 3.3+) a try knows what the earlier ones did: the job they
        recorded is read back (or, recorded for another model, input or account, left alone), and a
        first try that finds no record lists nothing. The account's jobs are listed only when the
        record is missing (no store, or a later try) or says a create was sent but never answered:
        that job may still land, so the list (back to the intent) is repeated after the longest time a
        create can take before a new job is submitted.
        """
        remembered = self._recall(context)
        own = remembered if remembered and remembered.get("display_name") == display_name else None
        if own and "batch_name" in own:
            return self._recorded(own["batch_name"], display_name)
        if remembered and not own and "batch_name" in remembered:
            self.log.info(
                "Not re-using %s from an earlier try: this task instance submitted it for another %s; "
                "submitting a new job",
                remembered["batch_name"],
                _what_changed(None, submission, remembered),
            )
        store = task_state_store(context)
        if own is None and store is not None and (remembered is not None or context["ti"].try_number <= 1):
            return None  # a record of another submission, or a first try: nothing to look for
        if own is not None:  # an intent: no job can be older than the intent that sent it
            self._since = float(own.get("intent_at", 0)) - CLOCK_MARGIN
        job = self._listed(display_name, submission, remembered)
        self._in_flight = job is None and own is not None
        if self._in_flight:
            grace = self.hook.settings.longest_call
            self.log.warning(
                "An earlier try sent a create for %s and died before it was answered; waiting %.0f s "
                "(the longest a create can take) for that job to show up before submitting a new one",
                display_name,
                grace,
            )
            time.sleep(grace)
            job = self._listed(display_name, submission, remembered)
        if job is not None:
            self._remember(context, job.name, display_name, submission)
        return job

    def _recorded(self, batch_name: str, display_name: str) -> BatchJobInfo | None:
        """The job an earlier try recorded, when it can still be re-used."""
        try:
            job = self.hook.get_batch(batch_name)
        except GeminiApiError as err:
            if err.code != 404:
                raise
            self.log.info("Not re-using %s from an earlier try: the API no longer knows it", batch_name)
            return None
        if job.display_name == display_name and job.state in self.reattach_states:
            self.log.info("Re-attached to %s (%s), recorded by an earlier try", job.name, job.state.value)
            return job
        self._not_reattachable(job)
        return None

    def _not_reattachable(self, job: BatchJobInfo) -> None:
        self.log.info(
            "Not re-using %s (%s): only %s jobs are re-attached",
            job.name,
            job.state.value,
            ", ".join(sorted(s.value for s in self.reattach_states)),
        )

    def _keep_earliest(
        self, context: Context, job: BatchJobInfo, display_name: str, submission: dict[str, str]
    ) -> BatchJobInfo:
        """After a submit that followed a dead try's unanswered create: when that create landed too,
        keep the earliest job and cancel the other, so one job runs to completion."""
        live = [
            j
            for j in self.hook.list_batches(created_since=self._since)
            if j.display_name == display_name and not j.state.is_terminal
        ]
        if len(live) < 2:
            return job
        kept = min(live, key=lambda j: (j.create_time or "", j.name))
        for other in live:
            if other.name != kept.name:
                self.log.warning(
                    "Two jobs for %s: the create of a try that died landed beside this try's; keeping "
                    "%s (the earliest) and cancelling %s",
                    display_name,
                    kept.name,
                    other.name,
                )
                cancel_best_effort(self.hook.cancel_batch, other.name, self.log, why="Duplicate")
        self._remember(context, kept.name, display_name, submission)
        return kept

    def _listed(
        self, display_name: str, submission: dict[str, str], remembered: dict[str, Any] | None
    ) -> BatchJobInfo | None:
        """The newest re-attachable job with this display name in the account's list, saying why the
        other jobs of this task instance are not re-used."""
        matches = []
        for job in self.hook.list_batches(created_since=self._since):
            if job.display_name == display_name and job.state in self.reattach_states:
                matches.append(job)
            elif job.display_name == display_name:
                self._not_reattachable(job)
            elif job.display_name and same_task_instance(job.display_name, display_name):
                self.log.info(
                    "Not re-using %s (%s): this task instance submitted it for another %s; "
                    "submitting a new job",
                    job.name,
                    job.state.value,
                    _what_changed(job, submission, remembered),
                )
        if not matches:
            return None
        job = max(matches, key=lambda j: j.create_time or "")
        self.log.info(
            "Re-attached to %s (%s), found by its display name %s", job.name, job.state.value, display_name
        )
        return job

    def _recall(self, context: Context) -> dict[str, Any] | None:
        """What an earlier try recorded: its job, or its intent to create one (Airflow 3.3+)."""
        store = task_state_store(context)
        if store is None:
            return None
        value = store.get(STATE_KEY)
        if isinstance(value, str):  # written by 0.1: the job's name alone
            return {"batch_name": value}
        return value if isinstance(value, dict) and "display_name" in value else None

    def _remember(
        self, context: Context, batch_name: str, display_name: str, submission: dict[str, str]
    ) -> None:
        store = task_state_store(context)
        if store is not None:
            store.set(STATE_KEY, {"batch_name": batch_name, "display_name": display_name, **submission})

    def _submit_once(
        self, context: Context, prepared: PreparedInput | None, display_name: str, submission: dict[str, str]
    ) -> BatchJobInfo:
        """Submit, with the intent recorded before the paid call and the job right after it: a try that
        dies in between leaves the intent, which tells the next try a create may be in flight."""
        self._check_model()
        store = task_state_store(context)
        if store is not None:
            store.set(STATE_KEY, {"display_name": display_name, "intent_at": time.time(), **submission})
        try:
            job = self._submit(prepared, display_name)
        except GeminiApiError as err:
            if store is not None and err.code is not None and not is_transient(err):
                store.delete(STATE_KEY)  # the API answered no: nothing was created
            raise
        self._remember(context, job.name, display_name, submission)
        return job

    # -- submitting and waiting ----------------------------------------------------------------

    def _check_model(self) -> None:
        """Refuse a model the API does not have, or does not serve in batch mode, before paying: the
        create would be refused too, but after the upload."""
        name = _model_name(self.model)
        try:
            model = self.hook.get_model(name)
        except GeminiApiError as err:
            if err.code != 404:
                raise
            raise AirflowFailException(
                f"Model {name} does not exist for this connection ({err}). Check `model`. {INPUT_FAILURE}"
            ) from None
        methods = model.get("supportedGenerationMethods") or []
        method = BATCH_EMBED_METHOD if self.embeddings else BATCH_GENERATE_METHOD
        if methods and method not in methods:
            raise AirflowFailException(
                f"Model {name} does not serve {'embeddings in ' if self.embeddings else ''}batch mode "
                f"(it supports {', '.join(methods)}). Choose a model that lists {method}. {INPUT_FAILURE}"
            )

    def _submit(self, prepared: PreparedInput | None, display_name: str) -> BatchJobInfo:
        source: dict[str, Any]
        if prepared is None:
            source = {"file_name": self.input_file_name}
        elif self.input_mode == "inline" or (self.input_mode == "auto" and prepared.inline_by_default):
            source = {"inline_requests": prepared.inline_requests()}
        else:
            uploaded = self.hook.upload_file(prepared.path, display_name=display_name)
            self._input_file = uploaded["name"]
            self.log.info(
                "Uploaded %s (%d bytes) as %s",
                prepared.path.rsplit("/", 1)[-1],
                prepared.size_bytes,
                uploaded["name"],
            )
            source = {"file_name": uploaded["name"]}
        job = self.hook.create_batch(
            model=self.model, display_name=display_name, embeddings=self.embeddings, **source
        )
        self.log.info("Created Gemini batch %s (%s) as %s", job.name, job.state.value, display_name)
        return job

    def _deadline(self, context: Context) -> float | None:
        """When waiting stops: ``wait_timeout`` from now, or the end of ``execution_timeout`` from the
        task's start, whichever comes first. Airflow does not enforce ``execution_timeout`` on a
        deferred task, so the trigger keeps it, and the job is cancelled there when ``cancel_on_kill``."""
        now = time.time()
        ends = []
        if self.wait_timeout:
            ends.append(now + self.wait_timeout)
        if self.execution_timeout:
            started = getattr(context["ti"], "start_date", None)
            began = started.timestamp() if started else now
            ends.append(began + self.execution_timeout.total_seconds())
        return min(ends, default=None)

    def _wait(self, context: Context, job: BatchJobInfo, result: dict[str, Any]) -> dict[str, Any]:
        deadline = self._deadline(context)
        if self.deferrable and not job.state.is_terminal:
            context["ti"].xcom_push(key=SUBMITTED_KEY, value=result)
            defer_wait(self, job.name, poll_interval=self.poll_interval, deadline=deadline)
        decider = PollDecider(
            job.name,
            poll_interval=self.poll_interval,
            deadline=deadline,
            max_failed_request_ratio=self.max_failed_request_ratio,
        )
        decision = decider.on_job(job, time.time())
        while decision.event is None:
            time.sleep(decision.seconds)
            try:
                outcome: BatchJobInfo | Exception = self.hook.get_batch(job.name)
            except Exception as err:
                outcome = err
            decision = decider.observe(outcome, time.time(), self.log)
        summary = finish_event(
            decision.event, self.log, after_failure=AFTER_FAILURE, cancel=self._cancel_on_timeout
        )
        return {**result, "state": summary["state"], "job": summary}

    def _output(self, context: Context, result: dict[str, Any]) -> dict[str, Any]:
        self._result = result  # for lineage
        if self._push_fields:
            push_fields(context, result)
        return result

    @never_fails
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the input read (a file, or the tables ``sql`` reads) and the ``geminiBatch`` facet."""
        from airflow_provider_gemini import lineage

        inputs = []
        if self.input_path is not None:
            inputs.append(lineage.path_dataset(self.input_path, self.input_conn_id))
        elif self.sql is not None and self.sql_conn_id:
            inputs += lineage.sql_datasets(self.sql_conn_id, self.sql)
        result = self._result
        stats = (result.get("job") or {}).get("stats") or {}
        facet = lineage.run_facet(
            model=result.get("model") or _model_name(self.model),
            batchName=result.get("batch_name"),
            state=result.get("state"),
            requestCount=result.get("request_count"),
            succeeded=stats.get("succeeded"),
            failed=stats.get("failed"),
            reattached=result.get("reattached"),
        )
        return lineage.lineage(inputs, [], facet)


def _what_changed(
    job: BatchJobInfo | None, submission: dict[str, str], remembered: dict[str, Any] | None
) -> str:
    """What differs between an earlier submission of a task instance and this one, as far as is known:
    from the earlier try's record (``job`` None: the recorded one), else the model the API reports."""
    if remembered and (job is None or remembered.get("batch_name") == job.name):
        before = remembered
    else:  # no record of it (Airflow < 3.3, or a record overwritten since): the API says the model
        before = {"model": job.model} if job is not None and job.model else {}
    changed = [
        f"{name} {before[name]!r} -> {value!r}"
        for name, value in submission.items()
        if name in before and before[name] != value
    ]
    return ", ".join(changed) or "input, connection or API (its fingerprint differs)"


def _model_name(model: str) -> str:
    return model if model.startswith("models/") else f"models/{model}"


def _as_list(value: Any, name: str) -> list[Any]:
    if value is None:
        raise BatchInputError(f"{name} resolved to nothing (None)", source=name)
    try:
        return list(value)
    except TypeError:
        raise BatchInputError(f"{name} must be a list, not {type(value).__name__}", source=name) from None
