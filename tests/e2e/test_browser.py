"""The Airflow UI as a person sees it, in the OS's Chromium driven by Playwright: the "Gemini batch
job" link on the create task, and the Gemini connection form. Screenshots go to tests/e2e/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_gemini.links.batch import batch_console_url
from tests.e2e.conftest import DAG_ID, remember_artifact
from tests.e2e.stack import PASSWORD, USERNAME, AirflowStack

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def page(browser: Any, stack: AirflowStack) -> Iterator[Any]:
    """A fresh browser context, signed in through the login form."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    sign_in(page, stack.url)
    yield page
    context.close()


def sign_in(page: Any, url: str) -> None:
    """Through the UI's login form, as the admin user."""
    page.goto(f"{url}/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/")


def shoot(page: Any, artifacts: Path, name: str) -> None:
    """A full-page screenshot, kept as an artifact of the run; its path is printed."""
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    remember_artifact(path)
    print(f"screenshot: {path}")


def test_the_create_task_shows_the_gemini_batch_job_link(
    page: Any, stack: AirflowStack, enrichment_run: str, artifacts: Path
) -> None:
    page.goto(f"{stack.url}/dags/{DAG_ID}/runs/{enrichment_run}/tasks/create/details")
    link = page.get_by_role("link", name="Gemini batch job")
    link.wait_for()
    shoot(page, artifacts, "create-task-gemini-link")
    batch_name = stack.xcom(DAG_ID, enrichment_run, "create", "batch_name")
    assert link.get_attribute("href") == batch_console_url(batch_name, stack.emulator_url)
    page.goto(batch_console_url(batch_name, stack.emulator_url))  # the emulator's page of the job
    page.get_by_text("SUCCEEDED", exact=True).wait_for()
    shoot(page, artifacts, "gemini-batch-job-page")


def test_the_connection_form_offers_the_gemini_type_and_its_fields(
    page: Any, stack: AirflowStack, artifacts: Path
) -> None:
    page.goto(f"{stack.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    kind = page.get_by_role("combobox")
    kind.click()
    kind.fill("Gemini")
    page.get_by_role("option", name="Gemini", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("API key", exact=True).wait_for()  # the password field, relabelled
    dialog.get_by_text("Description", exact=True).wait_for()
    for hidden in ("Host", "Port", "Schema", "Login"):  # the fields a Gemini connection does not use
        assert dialog.get_by_text(hidden, exact=True).count() == 0
    shoot(page, artifacts, "add-connection-gemini-standard")
    dialog.get_by_text("Extra Fields", exact=True).click()
    for label in ("Base URL", "API version", "Use Vertex AI", "Vertex AI project", "Vertex AI location"):
        dialog.get_by_text(label, exact=True).wait_for()
    shoot(page, artifacts, "add-connection-gemini-extra")
