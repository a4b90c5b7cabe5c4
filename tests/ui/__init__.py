"""Helpers of the batches page's e2e test (tests/e2e/test_batches_page.py)."""
