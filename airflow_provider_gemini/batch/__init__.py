"""The pure core: no Airflow imports. Request building, job states, results, pricing."""
