"""The domain errors every layer raises and the CLI prints (message only, no traceback)."""


class Ray32Error(Exception):
    """Base of errors caused by the input or the request: the message says what is wrong and what to do."""
