"""Adapters that let other Airflow providers drive Gemini batch jobs through this package."""
