"""Fixtures shared by the lifecycle tests."""

from __future__ import annotations

import pytest

from airflow_provider_gemini.sensors.batch import GeminiBatchSensor
from airflow_provider_gemini.triggers.batch import GeminiBatchTrigger


@pytest.fixture
def trigger_spy(monkeypatch):
    """Counts trigger runs and deferred resumptions; the real methods still do the work."""
    calls = {"trigger_runs": 0, "sensor_resumed": 0}
    real_run = GeminiBatchTrigger.run
    real_complete = GeminiBatchSensor.execute_complete

    def run(self):
        calls["trigger_runs"] += 1
        return real_run(self)

    def execute_complete(self, context, event):
        calls["sensor_resumed"] += 1
        return real_complete(self, context, event)

    monkeypatch.setattr(GeminiBatchTrigger, "run", run)
    monkeypatch.setattr(GeminiBatchSensor, "execute_complete", execute_complete)
    return calls
