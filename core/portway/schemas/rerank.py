"""The rerank request body (``POST /v1/rerank``): Cohere's and Jina's shape.

``documents`` are strings or objects with a ``text`` (Cohere's v1 and Jina's
object form; other keys on them are kept for adapters that use them).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag

from portway.schemas.openai import Open

#: The most documents one request may rank (Cohere's limit is 10,000 too).
MAX_DOCUMENTS = 10_000


class RerankDocument(Open):
    text: str


def _document_kind(value: Any) -> str | None:
    return "text" if isinstance(value, str) else "object" if isinstance(value, dict) else None


#: A string, or an object with a ``text`` (so a bad one is named precisely: ``documents[3].text``).
Document = Annotated[Annotated[str, Tag("text")] | Annotated[RerankDocument, Tag("object")],
                     Discriminator(_document_kind)]


class RerankRequest(Open):
    model: str = Field(min_length=1)
    query: str = Field(min_length=1)
    documents: list[Document] = Field(min_length=1, max_length=MAX_DOCUMENTS)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool | None = None
    max_tokens_per_doc: int | None = Field(None, ge=1)
