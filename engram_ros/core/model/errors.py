"""The one shape of a refused request: an exception that carries a status code and a message.

Every core request that can be refused (a recall, a governance list/edit/forget, a feedback, a
pose correction) raises a subclass of :class:`StatusError`. Its ``status`` is a member of that
request's ``IntEnum`` (whose values mirror the service's ``STATUS_*`` constants) and its
``message`` says what was wrong and what is accepted, so a service callback fills its response
with ``int(exc.status)`` and ``str(exc)`` and never raises.
"""

from __future__ import annotations

from enum import IntEnum


class StatusError(Exception):
    """A refused request: ``status`` says how (a service status code), ``message`` says why.

    ``str(error)`` is the message alone, as a service response's ``message`` field carries it.
    """

    def __init__(self, status: IntEnum, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.status!r}, {self.message!r})'


__all__ = ['StatusError']
