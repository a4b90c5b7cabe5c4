"""The emulator's memory: files on disk, batch jobs on a clock, settings, faults and call counts.

Everything here runs in the server's event loop thread; nothing is shared with other threads.
Every moment the emulator records or compares (job states, progress, timestamps, cache expiry) comes
from :class:`Clock`, which follows real time unless a test freezes it and steps it forward.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import secrets
import tempfile
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow_provider_gemini.batch.schemas import response_schema_problem
from airflow_provider_gemini.batch.wire import field as wire_field
from airflow_provider_gemini.testing import _responses

CALL_NAMES = (
    "upload_starts",
    "upload_chunks",
    "uploads",
    "file_gets",
    "file_lists",
    "file_deletes",
    "downloads",
    "creates",
    "embed_creates",
    "gets",
    "lists",
    "cancels",
    "deletes",
    "cache_creates",
    "cache_gets",
    "cache_lists",
    "cache_deletes",
    "model_gets",
)

DEFAULT_SETTINGS: dict[str, Any] = {
    "pending_seconds": 0.0,
    "running_seconds": 0.0,
    "expire_seconds": 48 * 3600.0,
    "failed_request_ratio": 0.0,
    "failed_key_pattern": None,
    "job_outcome": "SUCCEEDED",
    "job_error": None,
    "latency_seconds": 0.0,
    "extra_models": [],  # model names to accept beside the known ones (testing._models)
}
FILE_TTL = timedelta(hours=48)
COUNTERS = ("jobs_created", "files_created", "caches_created")  # kept in the journal with the calls


def now_iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    return secrets.token_hex(6)


@dataclass
class Clock:
    """The emulator's time: real time (plus any advance) by default; frozen, it moves only when advanced.

    Tests freeze it, then step it past a job's ``pending_seconds``/``running_seconds``/``expire_seconds``,
    so no test waits on a real-time window and a loaded machine cannot miss one. With ``step_per_get``,
    every batch GET moves it that far after answering: a job then ends after a set number of polls,
    which suits code (a DAG run, a trigger) that the test cannot pause between two polls.
    """

    offset: float = 0.0  # seconds added to real time by advance() while running
    frozen_at: float | None = None
    step_per_get: float = 0.0

    def now(self) -> float:
        return self.frozen_at if self.frozen_at is not None else time.time() + self.offset

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None

    def freeze(self) -> None:
        self.frozen_at = self.now()

    def unfreeze(self) -> None:
        if self.frozen_at is not None:
            self.offset = self.frozen_at - time.time()  # time resumes from where it stood
            self.frozen_at = None

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the emulator's clock only moves forward")
        if self.frozen_at is not None:
            self.frozen_at += seconds
        else:
            self.offset += seconds


@dataclass
class StoredFile:
    id: str
    display_name: str | None
    mime_type: str | None
    size: int
    sha256: str
    created: float
    source: str  # UPLOADED or GENERATED
    lines: int = 0  # known for synthesized files only

    @property
    def name(self) -> str:
        return f"files/{self.id}"

    def resource(self, base_url: str) -> dict[str, Any]:
        data = {
            "name": self.name,
            "mimeType": self.mime_type or "application/octet-stream",
            "sizeBytes": str(self.size),
            "createTime": now_iso(self.created),
            "updateTime": now_iso(self.created),
            "expirationTime": now_iso(self.created + FILE_TTL.total_seconds()),
            "sha256Hash": self.sha256,
            "uri": f"{base_url}/v1beta/files/{self.id}",
            "state": "ACTIVE",
            "source": self.source,
        }
        if self.display_name:
            data["displayName"] = self.display_name
        if self.source == "GENERATED":
            data["downloadUri"] = f"{base_url}/download/v1beta/files/{self.id}:download?alt=media"
        return data


@dataclass
class RequestItem:
    key: str
    metadata: dict[str, Any] | None
    request: dict[str, Any] | None
    failure: str | None  # why this request fails, decided when the job is created


@dataclass
class Job:
    id: str
    kind: str  # generate or embed
    model: str
    display_name: str | None
    created: float
    pending_seconds: float
    running_seconds: float
    expire_seconds: float
    outcome: str
    outcome_error: str | None
    inline: bool
    input_file: str | None
    request_count: int
    failed_count: int
    items: list[RequestItem] | None = None  # inline jobs only
    ended: float | None = None
    final_state: str | None = None
    final_error: str | None = None
    output_file: str | None = None
    inline_output: list[dict[str, Any]] | None = None
    # Deleted by the client: gone from get and list, but its work goes on (see Emulated.delete_job).
    deleted: bool = False

    @property
    def name(self) -> str:
        return f"batches/{self.id}"


@dataclass
class Fault:
    operations: list[str] | None = None
    status: int | None = None
    drop: bool = False
    drop_after_bytes: int | None = None
    delay_seconds: float = 0.0
    chunk_delay_seconds: float = 0.0
    rate: float = 1.0
    count: int | None = None
    # Hold the request, received whole, until this many more list calls arrive; it is then acted on
    # before that list is answered, whatever its client did meanwhile (as behind a proxy that held it).
    hold_until_lists: int | None = None


@dataclass
class Emulated:
    """All state of one emulator; ``data_dir`` keeps files and jobs across a restart."""

    data_dir: Path
    api_key: str | None = None
    persist: bool = False  # keep a journal of changes (only when the user asked for a data dir)
    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    files: dict[str, StoredFile] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CALL_NAMES, 0))
    caches: dict[str, dict[str, Any]] = field(default_factory=dict)  # context caches, by id
    jobs_created: int = 0
    held_requests: int = 0  # requests a hold_until_lists fault is holding now
    caches_created: int = 0
    files_created: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(20261125))
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self) -> None:
        (self.data_dir / "files").mkdir(parents=True, exist_ok=True)
        self._load()

    # -- persistence ---------------------------------------------------------------------------
    # A journal of JSON lines, one appended per change (a file added or deleted, a job created, ended
    # or deleted) with the counters of that moment: a change costs one short write however many jobs
    # exist. Loading replays it, then rewrites it compactly.

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.jsonl"

    def blob(self, file_id: str) -> Path:
        return self.data_dir / "files" / file_id

    def record(self, **change: Any) -> None:
        """Append one change (and the counters) to the journal, when the user asked for a data dir."""
        if not self.persist:
            return
        change["counters"] = {**{name: getattr(self, name) for name in COUNTERS}, "calls": self.calls}
        with open(self.journal_path, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(change) + "\n")

    def _load(self) -> None:
        if not self.persist or not self.journal_path.exists():
            return
        with open(self.journal_path, encoding="utf-8") as journal:
            for line in journal:
                try:
                    self._replay(json.loads(line))
                except ValueError:
                    continue  # a line cut short by a kill while it was written
        self._compact()

    def _replay(self, change: dict[str, Any]) -> None:
        if "file" in change:
            stored = StoredFile(**change["file"])
            self.files[stored.id] = stored
        if "file_deleted" in change:
            self.files.pop(change["file_deleted"], None)
        if "job" in change:
            raw = dict(change["job"])
            items = raw.pop("items", None)
            job = Job(**raw, items=[RequestItem(**i) for i in items] if items is not None else None)
            self.jobs[job.id] = job
        if "job_ended" in change and (ended := self.jobs.get(change["job_ended"]["id"])):
            for name, value in change["job_ended"].items():
                setattr(ended, name, value)
        if "job_deleted" in change and (deleted := self.jobs.get(change["job_deleted"])):
            deleted.deleted = True
        counters = change.get("counters", {})
        for name in COUNTERS:
            setattr(self, name, counters.get(name, getattr(self, name)))
        self.calls.update(counters.get("calls", {}))

    def _compact(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.data_dir, prefix=".journal-")
        with os.fdopen(fd, "w", encoding="utf-8") as journal:
            for stored in self.files.values():
                journal.write(json.dumps({"file": asdict(stored)}) + "\n")
            for job in list(self.jobs.values()):
                if job.deleted and self.state_of(job) not in ("PENDING", "RUNNING"):
                    del self.jobs[job.id]  # deleted and its work done: nothing will ever read it
                    continue
                journal.write(json.dumps({"job": asdict(job)}) + "\n")
        os.replace(tmp, self.journal_path)
        self.record()  # the counters

    def reset(self) -> None:
        for file_id in self.files:
            self.blob(file_id).unlink(missing_ok=True)
        for upload in self.uploads.values():
            Path(upload["path"]).unlink(missing_ok=True)
        # Every field with a default factory (the collections, settings, calls, rng and clock) starts
        # afresh; held_requests stays, as the requests still held count themselves out.
        for spec in fields(self):
            if spec.default_factory is not MISSING:
                setattr(self, spec.name, spec.default_factory())
        self.jobs_created = self.files_created = self.caches_created = 0
        if self.persist:
            self.journal_path.unlink(missing_ok=True)
            self.record()

    # -- files ---------------------------------------------------------------------------------

    def add_file(
        self, path: Path, *, display_name: str | None, mime_type: str | None, source: str
    ) -> StoredFile:
        file_id = new_id()
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        os.replace(path, self.blob(file_id))
        stored = StoredFile(
            id=file_id,
            display_name=display_name,
            mime_type=mime_type,
            size=self.blob(file_id).stat().st_size,
            sha256=digest.hexdigest(),
            created=self.clock.now(),
            source=source,
        )
        self.files[file_id] = stored
        self.files_created += 1
        self.record(file=asdict(stored))
        return stored

    def delete_file(self, file_id: str) -> None:
        self.files.pop(file_id)
        self.blob(file_id).unlink(missing_ok=True)
        self.record(file_deleted=file_id)

    # -- jobs ----------------------------------------------------------------------------------

    def request_failure(self, key: str, request: dict[str, Any] | None = None) -> str | None:
        if problem := schema_problem(request):
            return f"* GenerateContentRequest.generation_config.{problem}"
        cache = wire_field(request or {}, "cachedContent", "cached_content")
        if cache and self.cache(str(cache)) is None:
            return f"CachedContent not found (or permission denied): {cache}"
        pattern = self.settings.get("failed_key_pattern")
        if pattern and re.search(pattern, key):
            return f"Request {key} failed (emulated: key matches {pattern!r})"
        ratio = float(self.settings.get("failed_request_ratio") or 0.0)
        if ratio > 0:
            bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32
            if bucket < ratio:
                return f"Request {key} failed (emulated failure ratio {ratio})"
        return None

    def new_job(
        self,
        *,
        kind: str,
        model: str,
        display_name: str | None,
        items: list[RequestItem] | None,
        input_file: str | None,
        request_count: int,
        failed_count: int,
    ) -> Job:
        settings = self.settings
        job = Job(
            id=new_id(),
            kind=kind,
            model=model,
            display_name=display_name,
            created=self.clock.now(),
            pending_seconds=float(settings["pending_seconds"]),
            running_seconds=float(settings["running_seconds"]),
            expire_seconds=float(settings["expire_seconds"]),
            outcome=str(settings["job_outcome"]).upper().removeprefix("BATCH_STATE_"),
            outcome_error=settings.get("job_error"),
            inline=items is not None,
            input_file=input_file,
            request_count=request_count,
            failed_count=failed_count,
            items=items,
        )
        self.jobs[job.id] = job
        self.jobs_created += 1
        self.record(job=asdict(job))
        return job

    def add_history(self, count: int, days: float) -> None:
        """``count`` finished jobs, created evenly over the ``days`` before now: an account's past, so
        that listing it back to a time can be told from listing all of it."""
        now = self.clock.now()
        for number in range(count):
            created = now - days * 86_400 * (count - number) / count
            job = Job(
                id=new_id(),
                kind="generate",
                model="models/gemini-2.5-flash",
                display_name=f"history-{number}",
                created=created,
                pending_seconds=0.0,
                running_seconds=60.0,
                expire_seconds=float(self.settings["expire_seconds"]),
                outcome="SUCCEEDED",
                outcome_error=None,
                inline=True,
                input_file=None,
                request_count=0,
                failed_count=0,
                items=[],
                ended=created + 60,
                final_state="SUCCEEDED",
                inline_output=[],
            )
            self.jobs[job.id] = job
            self.record(job=asdict(job))

    def cache(self, name: str) -> dict[str, Any] | None:
        """A live context cache by name (``cachedContents/ID``); expired ones are forgotten."""
        cache = self.caches.get(name.rsplit("/", 1)[-1])
        if cache is not None and cache["expires"] < self.clock.now():
            self.caches.pop(cache["id"])
            return None
        return cache

    def state_of(self, job: Job) -> str:
        """The job's state now, from its clock (no background work: computed on every read)."""
        if job.final_state:
            return job.final_state
        elapsed = self.clock.now() - job.created
        if job.pending_seconds + job.running_seconds > job.expire_seconds and elapsed >= job.expire_seconds:
            return "EXPIRED"  # left pending or running past the expiry limit
        if elapsed < job.pending_seconds:
            return "PENDING"
        if elapsed < job.pending_seconds + job.running_seconds:
            return "RUNNING"
        return job.outcome

    def end(self, job: Job, state: str, error: str | None = None) -> None:
        job.final_state = state
        job.final_error = error
        job.ended = self.clock.now()
        ending = ("final_state", "final_error", "ended", "output_file", "inline_output")
        self.record(job_ended={"id": job.id, **{name: getattr(job, name) for name in ending}})

    def delete_job(self, job: Job) -> None:
        """Forget the job as the API's ``batches.delete`` does: the operation resource goes (get and
        list no longer show it) but, as the reference says, delete "does not cancel the operation": a
        pending or running job keeps its place among the live jobs until its clock ends it."""
        job.deleted = True
        self.record(job_deleted=job.id)

    def progress(self, job: Job) -> tuple[int, int, int]:
        """(succeeded, failed, pending) request counts as the job stands now."""
        state = self.state_of(job)
        total, failed = job.request_count, job.failed_count
        if state == "SUCCEEDED":
            return total - failed, failed, 0
        if state != "RUNNING" or job.running_seconds <= 0:
            return 0, 0, total
        share = min(1.0, (self.clock.now() - job.created - job.pending_seconds) / job.running_seconds)
        done_failed = int(failed * share)
        done_ok = int((total - failed) * share)
        return done_ok, done_failed, total - done_ok - done_failed

    def pick_fault(self, operation: str) -> Fault | None:
        for fault in list(self.faults):
            if fault.operations is not None and operation not in fault.operations:
                continue
            if fault.rate < 1.0 and self.rng.random() >= fault.rate:
                continue
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
            return fault
        return None

    def stats(self) -> dict[str, Any]:
        # Deleted jobs count too: deleting does not stop their work.
        live = sum(1 for j in self.jobs.values() if self.state_of(j) in ("PENDING", "RUNNING"))
        return {
            "calls": dict(self.calls),
            "jobs_created": self.jobs_created,
            "files_created": self.files_created,
            "live_jobs": live,
            "held_requests": self.held_requests,
            "caches_created": self.caches_created,
            "live_caches": sorted(c["name"] for c in self.caches.values()),
        }


def schema_problem(request: dict[str, Any] | None) -> str | None:
    """What the API would refuse in a request's response schema (the provider's own rules)."""
    config = wire_field(request or {}, "generationConfig", "generation_config")
    return response_schema_problem(config) if isinstance(config, dict) else None


def answer(job: Job, item: RequestItem, state: Emulated) -> dict[str, Any]:
    """The response (or error) of one request, as the output carries it."""
    if item.failure or item.request is None:
        message = item.failure or "Request is missing"
        return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
    if job.kind == "embed":
        content = item.request.get("content") or {}
        text = _responses.prompt_text({"contents": [content]})
        dims = wire_field(item.request, "outputDimensionality", "output_dimensionality") or 8
        return {"response": {"embedding": {"values": _responses.embedding(text, int(dims))}}}
    cache_name = wire_field(item.request, "cachedContent", "cached_content")
    cache = state.cache(str(cache_name)) if cache_name else None
    cached_tokens = int(cache["tokens"]) if cache else 0
    return {
        "response": _responses.generate_content_response(
            item.request, model=job.model, cached_tokens=cached_tokens
        )
    }
