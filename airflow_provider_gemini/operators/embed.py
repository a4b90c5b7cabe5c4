"""Creates a batch job of embeddings (``asyncBatchEmbedContent``): texts in, one vector per key out.

An operator of its own rather than a mode of the create operator: its parameters differ (a text field,
a task type, a title, a vector length; no generation config, tools or system instruction), and a DAG
reads better with ``GeminiBatchEmbedOperator`` than with a flag. Everything else is the create
operator's: validation before any paid call, one paid job per task instance, the deferrable wait,
the extra link, SQL or records or a file or requests as input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_provider_gemini.batch.errors import BatchInputError
from airflow_provider_gemini.operators.batch import GeminiBatchCreateOperator

DEFAULT_EMBEDDING_MODEL = "gemini-embedding-001"
_GENERATION_ONLY = ("system_instruction", "generation_config", "tools", "cached_content", "safety_settings")


class GeminiBatchEmbedOperator(GeminiBatchCreateOperator):
    """Creates (or re-attaches to) a Gemini batch job that embeds texts, at the batch price.

    Takes every parameter of ``GeminiBatchCreateOperator`` except those of text generation, and:

    :param model: an embeddings model (default ``gemini-embedding-001``).
    :param text_field: the record field (or SQL column) to embed; or give ``prompt_template`` to
        build the text from several fields.
    :param task_type: what the vectors are for: ``RETRIEVAL_DOCUMENT``, ``RETRIEVAL_QUERY``,
        ``SEMANTIC_SIMILARITY``, ``CLASSIFICATION``, ``CLUSTERING``, ``QUESTION_ANSWERING``,
        ``FACT_VERIFICATION``, ``CODE_RETRIEVAL_QUERY``.
    :param title: the documents' title (only with ``RETRIEVAL_DOCUMENT``).
    :param output_dimensionality: the vectors' length (the model's full length when None).

    A JSONL file or ``requests`` hold EmbedContentRequests (``{"content": {"parts": [...]}}``); the
    three settings are merged into each request that does not set them. The results operators write
    each vector in an ``embedding`` column.
    """

    embeddings = True

    def __init__(
        self,
        *,
        model: str = DEFAULT_EMBEDDING_MODEL,
        text_field: str | None = None,
        prompt_template: str | Callable[[dict[str, Any]], str] | None = None,
        task_type: str | None = None,
        title: str | None = None,
        output_dimensionality: int | None = None,
        **kwargs: Any,
    ) -> None:
        if given := [name for name in _GENERATION_ONLY if kwargs.get(name) is not None]:
            raise ValueError(f"{', '.join(given)}: for text generation, not embeddings")
        if text_field is not None and prompt_template is not None:
            raise ValueError("give text_field or prompt_template, not both")
        if text_field is not None:
            prompt_template = "{" + text_field + "}"
        from airflow_provider_gemini.batch.inputs import EmbedOptions

        try:  # a wrong task type or length fails when the DAG is parsed
            EmbedOptions(task_type=task_type, title=title, output_dimensionality=output_dimensionality)
        except BatchInputError as err:
            raise ValueError(str(err)) from None
        super().__init__(model=model, prompt_template=prompt_template, **kwargs)
        self.text_field = text_field
        self.embedding_task_type = task_type  # (BaseOperator.task_type is the operator's class name)
        self.title = title
        self.output_dimensionality = output_dimensionality

    def _request_options(self) -> Any:
        from airflow_provider_gemini.batch import inputs

        return inputs.EmbedOptions(
            task_type=self.embedding_task_type,
            title=self.title,
            output_dimensionality=self.output_dimensionality,
        )
