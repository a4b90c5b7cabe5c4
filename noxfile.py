"""The compatibility matrix, run by ``make test`` after the full suite on the newest pins (``.venv/``).

Each session is one environment, made with uv and pinned by its own file under ``constraints/``:

- ``oldest_airflow``: the oldest Airflow we support with the newest google-genai.
- ``google_provider``: the newest Airflow beside ``apache-airflow-providers-google``, whose
  google-cloud-aiplatform holds google-genai below 3; this package is installed from its wheel after
  the Google provider, as a user of a managed Airflow receives it.

Both run the lifecycle, results, provider-info and installed-provider tests.
``nox -s google_provider -- -x`` passes arguments on to pytest.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2025.5"
nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["oldest_airflow", "google_provider"]

ROOT = Path(__file__).resolve().parent
PYTHON = "3.11"
COMPAT_TESTS = ["tests/lifecycle", "tests/transfers", "tests/packaging", "tests/test_provider.py"]


@nox.session(python=PYTHON)
def oldest_airflow(session: nox.Session) -> None:
    # wtforms: Airflow 3.0 builds the connection form from the hook's WTForms fields (the FAB provider
    # brings it in a deployment).
    session.install("-c", "constraints/airflow-3.0.txt", "-e", ".[dev]", "wtforms")
    _show_versions(session)
    session.run("pytest", "-q", *COMPAT_TESTS, *session.posargs)


@nox.session(python=PYTHON)
def google_provider(session: nox.Session) -> None:
    constraints = str(ROOT / "constraints" / "google-provider.txt")
    work = Path(session.create_tmp())

    dist = work / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("-c", constraints, "build", "twine", "hatchling", "pip")
    session.run("python", "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT))
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    session.run("twine", "check", "--strict", str(wheel), str(sdist))

    # As on a managed Airflow: the Google provider first, then this package with plain pip, which must
    # find everything it needs already there (google-genai 2.x included) and report no conflict.
    session.install("-c", constraints, "apache-airflow", "apache-airflow-providers-google")
    pip_says = session.run(
        "python", "-m", "pip", "install", "--disable-pip-version-check", str(wheel), silent=True
    )
    print(pip_says)
    if any(word in (pip_says or "").lower() for word in ("conflict", "incompatible")):
        session.error("pip reported a conflict installing the wheel beside the Google provider")
    session.run("python", "-m", "pip", "check")
    session.install("-c", constraints, f"{wheel}[dev]")  # the test tools
    session.run("python", "-m", "pip", "check")
    _show_versions(session)
    genai = session.run("python", "-c", _VERSION_OF.format("google-genai"), silent=True) or ""
    if not genai.strip().startswith("2."):
        session.error(f"the Google provider should hold google-genai at 2.x here, found {genai.strip()}")
    listed = session.run("airflow", "providers", "list", "--output", "json", silent=True, env=_QUIET) or ""
    names = {entry["package_name"] for entry in json.loads(listed[listed.index("[") :])}
    missing = {"apache-airflow-providers-google", "airflow-provider-gemini"} - names
    if missing:
        session.error(f"airflow providers list does not show {sorted(missing)}")
    session.run("python", "-c", _BOTH_HOOKS_IMPORT)

    # The tests run from a copy, away from the source tree, so that they import the installed wheel.
    tree = work / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    for part in ("tests", "example_dags"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__", "artifacts"))
    shutil.copy(ROOT / "pyproject.toml", tree)
    session.chdir(tree)
    session.run("python", "-c", _FROM_SITE_PACKAGES)
    session.run("pytest", "-q", "-p", "no:cacheprovider", *COMPAT_TESTS, *session.posargs)


_QUIET = {"AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}
_VERSION_OF = "from importlib.metadata import version; print(version({!r}))"
_BOTH_HOOKS_IMPORT = (
    "from airflow.providers.google.common.hooks.base_google import GoogleBaseHook; "
    "from airflow.providers.google.cloud.hooks.gen_ai import GenAIGenerativeModelHook; "
    "from airflow_provider_gemini.hooks.gemini import GeminiHook; "
    "GeminiHook(gemini_conn_id='x'); print('both providers import')"
)
_FROM_SITE_PACKAGES = (
    "import airflow_provider_gemini as p; "
    "assert 'site-packages' in p.__file__, p.__file__; print('testing the installed wheel:', p.__file__)"
)


def _show_versions(session: nox.Session) -> None:
    session.run(
        "python",
        "-c",
        "from importlib.metadata import version as v; "
        "print('apache-airflow', v('apache-airflow'), '| google-genai', v('google-genai'))",
    )
