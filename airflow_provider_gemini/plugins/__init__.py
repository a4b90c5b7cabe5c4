"""The "Gemini batches" page of the Airflow UI: an Airflow plugin that serves a small FastAPI app."""
