"""API calls a create task makes to find out whether it already paid, in an account holding many jobs.

The emulator (its own process) holds ``--jobs`` finished jobs created over the last 30 days; then real
Airflow runs each scenario
with ``dag.test()`` against an SQLite metadata database, and the emulator's call counts say what each
create cost before it submitted:

- first try: a task instance's first run;
- retry, job recorded: a try that fails after its job was created and recorded, then its retry;
- retry, create in flight: a try that dies while its create is held by the server, then its retry
  (which lists, waits the longest time a create can take, lists again, submits, and lists once more;
  today each of those lists stops at the jobs older than the dead try's intent, less 15 minutes).

Each scenario runs with today's operator and with one that looks its identity up the way version 0.1
did, by listing the account's jobs on every try. Prints list and get calls per scenario side by side;
needs Airflow 3.3 (the task state store) for today's figures. Asserts nothing.

    .venv/bin/python benchmarks/reattach_calls.py [--jobs 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._emulator_process import connection_env, emulator_process
from tests.lifecycle.dag_sources import dying_with_create_in_flight, failing_after_submit

HEADER = """
import datetime

from airflow.sdk import dag

from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator


class ListsEveryTry(GeminiBatchCreateOperator):
    # Version 0.1's lookup: the account's jobs listed by display name on every try.
    def _find_existing(self, context, display_name, submission):
        return self._listed(display_name, submission, None)
"""

SCENARIOS = {  # the class source for a base class, and the name of the class to run
    "first try": lambda base: ("", base),
    "retry, job recorded": lambda base: (failing_after_submit(base, f"Failing{base}"), f"Failing{base}"),
    "retry, create in flight": lambda base: (
        dying_with_create_in_flight(base, f"Dying{base}"),
        f"Dying{base}",
    ),
}
LOOKUPS = {"today": "GeminiBatchCreateOperator", "version 0.1": "ListsEveryTry"}


def dag_source(dag_id: str, classes: str, operator: str) -> str:
    return (
        HEADER
        + classes
        + textwrap.dedent(f"""
        @dag(dag_id={dag_id!r}, schedule=None, start_date=datetime.datetime(2024, 1, 1), catchup=False,
             default_args={{"retries": 1, "retry_delay": datetime.timedelta(seconds=0)}})
        def the_dag():
            {operator}(task_id="create", model="gemini-2.5-flash", requests=[{{"contents": [
                {{"parts": [{{"text": "Describe a kettle."}}]}}]}}])

        the_dag()
        """)
    )


def dag_bag(path: str):  # type: ignore[no-untyped-def]
    """A DagBag of ``path``; the class moved to ``airflow.dag_processing`` in Airflow 3.2."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0 and 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    return DagBag(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="gemini-bench-airflow-"))
    dags = home / "dags"
    dags.mkdir()
    os.environ.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    rows = []
    with emulator_process() as url:
        from airflow_provider_gemini.testing.emulator import EmulatorClient

        env = connection_env(url)
        conn = json.loads(env["AIRFLOW_CONN_GEMINI_DEFAULT"])
        conn["extra"].update(timeout=0.5, retry_attempts=1)  # the wait for a create in flight: 0.5 s
        os.environ["AIRFLOW_CONN_GEMINI_DEFAULT"] = json.dumps(conn)
        from airflow.utils import db

        db.initdb()

        emulator = EmulatorClient(url)
        emulator.add_history(args.jobs, days=30)
        for number, (scenario, build) in enumerate(SCENARIOS.items()):
            for lookup, base in LOOKUPS.items():
                dag_id = f"reattach_{number}_{base.lower()}"
                (dags / f"{dag_id}.py").write_text(dag_source(dag_id, *build(base)))
                if "in flight" in scenario:
                    emulator.add_fault(operations=["creates"], hold_until_lists=2, count=1)
                before = emulator.stats()["calls"]
                dag = dag_bag(str(dags / f"{dag_id}.py")).get_dag(dag_id)
                assert dag is not None, dag_id
                dag.test()
                after = emulator.stats()["calls"]
                emulator.clear_faults()
                rows.append(
                    {
                        "scenario": scenario,
                        "lookup": lookup,
                        "lists": after["lists"] - before["lists"],
                        "gets": after["gets"] - before["gets"],
                        "creates": after["creates"] - before["creates"],
                    }
                )

    print(f"\nan account holding {args.jobs} jobs (list pages of 100)\n")
    print(f"{'scenario':<26}{'lookup':<14}{'list calls':>11}{'get calls':>11}{'creates':>9}")
    for r in rows:
        print(f"{r['scenario']:<26}{r['lookup']:<14}{r['lists']:>11}{r['gets']:>11}{r['creates']:>9}")


if __name__ == "__main__":
    main()
