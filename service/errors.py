"""Domain errors of the application layer: what went wrong, in the service's words.

The web layer maps each class to one HTTP status through one handler (`app/errors.py`); a batch job or
the simulator catches them as they are. Expected outcomes ("no eligible offer") are values, not errors.
"""

from __future__ import annotations


class ServiceError(Exception):
    """A request the service cannot carry out as asked."""


class InvalidInput(ServiceError):
    """A value that passed the schema but not the catalogue or the history (unknown channel, offer...).

    `field` is the dotted path of the value in the command (`channel`, `contacts.3.offer_id`).

    >>> InvalidInput("channel", "unknown channel 'fax'").field
    'channel'
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(ServiceError):
    """The command names something the history does not hold (a decision that presented no such offer)."""


class Unavailable(ServiceError):
    """A store the command needs is down, or the service is overloaded: nothing was acknowledged, the
    caller may retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(Unavailable):
    """Too many decisions in progress in this process: shed at once instead of queueing."""
