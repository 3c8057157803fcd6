"""Wire formats: the canonical OpenAI Chat Completions shape
(:mod:`portway.formats.openai`) and what converts to and from it."""


class MalformedAnswer(ValueError):
    """An upstream answer that does not have the shape its format promises.

    Raised by the shape checks with a short reason naming the field
    (``choices[0].message is not an object``); a provider turns it into a
    classified, retryable error (see ``Provider.malformed``)."""
