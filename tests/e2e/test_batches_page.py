"""The "Gemini batches" page in a real Airflow (api-server, scheduler, dag-processor, triggerer) with two
example DAGs, driven in Chromium: opened from the UI's navigation, live progress on the emulator's frozen
clock, links to the task instances, tokens and cost from the manifests; then who may see what, and how
many list calls the page costs an account of 5 000 jobs. Screenshots go to tests/e2e/artifacts/."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from airflow_provider_gemini.plugins.gemini_batches import URL_PREFIX, URL_ROUTE
from airflow_provider_gemini.testing.emulator import EmulatorClient
from tests.e2e.conftest import running
from tests.e2e.stack import API_KEY, PASSWORD, ROOT, USERNAME, AirflowStack, wait_until
from tests.e2e.test_browser import shoot, sign_in
from tests.ui.auth_manager import DENIED_DAG, DENIED_USER

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
BASIC, ENRICHMENT = "gemini_batch_basic", "gemini_batch_enrichment"
ANALYST_PASSWORD = "e2e-analyst-password"
RUNNING_SECONDS = 600
HISTORY = 5000


class PageStack(AirflowStack):
    """The e2e stack with a second, read-only user and an auth manager that hides one DAG from them."""

    def env(self) -> dict[str, str]:
        env = super().env()
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({USERNAME: PASSWORD, DENIED_USER: ANALYST_PASSWORD}))
        env.update(
            {
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin,{DENIED_USER}:viewer",
                "AIRFLOW__CORE__AUTH_MANAGER": "tests.ui.auth_manager.OneDagDeniedAuthManager",
                "PYTHONPATH": str(ROOT),
                "AIRFLOW_VAR_GEMINI_BASIC_OUTPUT_DIR": str(self.home / "basic"),
            }
        )
        return env


@pytest.fixture(scope="module")
def airflow(request: pytest.FixtureRequest) -> Iterator[PageStack]:
    home = Path(tempfile.mkdtemp(prefix="gemini-e2e-page-"))
    dags = home / "dags"
    dags.mkdir()
    for dag_id in (BASIC, ENRICHMENT):
        shutil.copy(ROOT / "example_dags" / f"{dag_id}.py", dags)
    shutil.copytree(ROOT / "example_dags" / "data", dags / "data")
    stack = PageStack(home, dags)
    with running(stack, request):
        emulator = EmulatorClient(stack.emulator_url)
        emulator.freeze()
        emulator.configure(pending_seconds=0, running_seconds=RUNNING_SECONDS)
        yield stack


@pytest.fixture(scope="module")
def emulator(airflow: PageStack) -> EmulatorClient:
    return EmulatorClient(airflow.emulator_url)


@pytest.fixture(scope="module")
def runs(airflow: PageStack) -> dict[str, str]:
    """One run of each example DAG, triggered and left waiting on its (frozen) running job."""
    found = {}
    for dag_id in (BASIC, ENRICHMENT):
        airflow.wait_for_dag(dag_id)
        found[dag_id] = airflow.trigger(dag_id, "2026-11-24T00:00:00Z")
    for dag_id, run_id in found.items():
        state = airflow.wait_for_task(dag_id, run_id, "wait", {"deferred", "failed", "upstream_failed"})
        assert state == "deferred", airflow.task_states(dag_id, run_id)
    return found


@pytest.fixture(scope="module")
def bodies() -> list[str]:
    """Every body the page's app sent to the browser in this module."""
    return []


@pytest.fixture
def page(browser: Any, airflow: PageStack, bodies: list[str]) -> Iterator[Any]:
    """A browser signed in as the admin, recording what the page's app answers."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)

    from playwright.sync_api import Error as PlaywrightError

    def record(response: Any) -> None:
        if URL_PREFIX in response.url:
            # A navigation away can discard a body; the rest are still checked.
            with contextlib.suppress(PlaywrightError):
                bodies.append(response.text())

    page.on("response", record)
    sign_in(page, airflow.url)
    yield page
    context.close()


def open_from_navigation(page: Any, airflow: PageStack) -> Any:
    page.get_by_role("link", name="Gemini batches").first.click()
    page.wait_for_url(f"{airflow.url}/plugin/{URL_ROUTE}")
    return page.frame_locator("iframe[title='Gemini batches']")


def job_row(frame: Any, dag_id: str) -> Any:
    return frame.locator(f"tr.job[data-dag-id='{dag_id}']")


def task_path(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/create"


def refreshes_of(frame: Any) -> int:
    return int(frame.locator("body").get_attribute("data-refreshes") or 0)


def done_of(text: str) -> tuple[int, int]:
    match = re.search(r"(\d+)/(\d+) done", text)
    assert match, text
    return int(match.group(1)), int(match.group(2))


def test_the_page_follows_both_runs_from_the_navigation_to_their_costs(
    page: Any, airflow: PageStack, emulator: EmulatorClient, runs: dict[str, str], artifacts: Path
) -> None:
    frame = open_from_navigation(page, airflow)
    for dag_id in runs:
        job_row(frame, dag_id).locator("td .state", has_text="RUNNING").wait_for()
    refreshes = refreshes_of(frame)

    emulator.advance(RUNNING_SECONDS / 2)  # half way: the page shows it without a reload
    for dag_id in runs:
        row = job_row(frame, dag_id)
        wait_until(lambda row=row: done_of(row.locator(".progress-text").inner_text())[0] > 0, 60, "progress")
        done, total = done_of(row.locator(".progress-text").inner_text())
        assert 0 < done < total, (dag_id, done, total)
    assert refreshes_of(frame) > refreshes  # the page refreshed on its own
    shoot(page, artifacts, "gemini-batches-running")

    emulator.advance(RUNNING_SECONDS)
    for dag_id in runs:
        job_row(frame, dag_id).locator("td .state", has_text="SUCCEEDED").wait_for()
    for dag_id, run_id in runs.items():
        assert airflow.wait_for_run(dag_id, run_id) == "success", airflow.task_states(dag_id, run_id)

    frame.get_by_role("button", name="Refresh").click()
    for dag_id, run_id in runs.items():
        manifest = airflow.xcom(dag_id, run_id, "store")
        row = job_row(frame, dag_id)
        assert row.get_attribute("data-name") == manifest["batch_name"]
        tokens = row.locator("td.tokens[data-total]")
        tokens.wait_for()
        assert int(tokens.get_attribute("data-total")) == manifest["tokens"]["total"]
        cost = row.locator("td.cost")
        assert float(cost.get_attribute("data-batch")) == pytest.approx(manifest["cost"]["batch"])
        assert float(cost.get_attribute("data-standard")) == pytest.approx(manifest["cost"]["standard"])
        # The enrichment example stores one batch twice (a file and a table): two manifests, one spend.
        spent = frame.locator(f"tr.spend[data-dag-id='{dag_id}'] td[data-window='7']")
        assert float(spent.get_attribute("data-cost")) == pytest.approx(manifest["cost"]["batch"])
        link = row.locator("a.task-link")
        assert link.inner_text() == f"{dag_id} / {run_id} / create"
        assert link.get_attribute("href") == task_path(dag_id, run_id)
    shoot(page, artifacts, "gemini-batches-finished")

    job_row(frame, BASIC).locator("a.task-link").click()  # the whole UI moves, not the frame
    page.wait_for_url(f"{airflow.url}{task_path(BASIC, runs[BASIC])}")
    page.get_by_text("GeminiBatchCreateOperator", exact=True).wait_for()  # the task instance's header
    shoot(page, artifacts, "gemini-batches-task-link")


def test_anonymous_requests_are_refused(airflow: PageStack, runs: dict[str, str]) -> None:
    for path in ("/", "/api/jobs", "/api/spend", "/api/connections"):
        response = httpx.get(f"{airflow.url}{URL_PREFIX}{path}", timeout=30)
        assert response.status_code in (401, 403), (path, response.status_code)
    forged = httpx.get(f"{airflow.url}{URL_PREFIX}/api/jobs", cookies={"_token": "not-a-token"}, timeout=30)
    assert forged.status_code in (401, 403)


def test_a_user_without_access_to_a_dag_does_not_see_its_jobs(
    airflow: PageStack, runs: dict[str, str], bodies: list[str]
) -> None:
    token = httpx.post(
        f"{airflow.url}/auth/token", json={"username": DENIED_USER, "password": ANALYST_PASSWORD}, timeout=30
    ).json()["access_token"]
    analyst = httpx.Client(
        base_url=f"{airflow.url}{URL_PREFIX}", headers={"Authorization": f"Bearer {token}"}
    )
    with analyst:
        jobs = analyst.get("/api/jobs").raise_for_status().json()["jobs"]
        assert analyst.get("/api/connections").raise_for_status().json() == {"connections": []}
        spend = analyst.get("/api/spend").raise_for_status().json()["dags"]
        bodies.extend([json.dumps(jobs), json.dumps(spend)])
    assert [job["task"]["dag_id"] for job in jobs] == [ENRICHMENT]  # a viewer sees no unlinked jobs either
    assert [row["dag_id"] for row in spend] == [ENRICHMENT]
    assert DENIED_DAG not in json.dumps(jobs) + json.dumps(spend)
    admin = httpx.get(f"{airflow.url}{URL_PREFIX}/api/connections", headers=airflow.api.headers, timeout=30)
    assert admin.json() == {"connections": ["gemini_default"]}


def test_thousands_of_jobs_cost_one_list_call_per_refresh(
    page: Any, airflow: PageStack, emulator: EmulatorClient, runs: dict[str, str], bodies: list[str]
) -> None:
    emulator.add_history(HISTORY)
    lists = emulator.stats()["calls"]["lists"]
    frame = open_from_navigation(page, airflow)
    frame.locator("tr.job").nth(49).wait_for()
    assert emulator.stats()["calls"]["lists"] - lists == 1  # the first page: one call
    calls, refreshes = emulator.stats()["calls"]["lists"], refreshes_of(frame)
    for round_ in range(3):
        before = refreshes_of(frame)
        frame.get_by_role("button", name="Refresh").click()
        wait_until(lambda before=before: refreshes_of(frame) > before, 60, f"refresh {round_}")
    # The page may also have refreshed on its own timer meanwhile: each refresh, one call at most.
    assert emulator.stats()["calls"]["lists"] - calls <= refreshes_of(frame) - refreshes
    before_calls = emulator.stats()["calls"]["lists"]
    first = frame.locator("tr.job").first.get_attribute("data-name")
    frame.get_by_role("button", name="Older").click()
    wait_until(lambda: frame.locator("tr.job").first.get_attribute("data-name") != first, 60, "the next page")
    assert emulator.stats()["calls"]["lists"] - before_calls == 1
    assert frame.locator("tr.job").count() == 50


def test_the_api_key_reaches_no_browser(airflow: PageStack, runs: dict[str, str], bodies: list[str]) -> None:
    assert len(bodies) > 10
    assert not [body for body in bodies if API_KEY in body]
