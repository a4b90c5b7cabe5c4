"""Apache Airflow provider for the Gemini API Batch Mode."""

__version__ = "0.1.0"
