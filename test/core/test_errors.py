"""The status-carrying errors: one StatusError base, each request's error a subclass of it."""

from __future__ import annotations

import pytest

from engram_ros.core.forgetting import FeedbackError
from engram_ros.core.forgetting import FeedbackStatus
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import GovernanceStatus
from engram_ros.core.model.errors import StatusError
from engram_ros.core.places import CorrectionError
from engram_ros.core.places import CorrectionStatus
from engram_ros.core.query import QueryError
from engram_ros.core.query import RecallStatus

ERRORS = [
    (QueryError, RecallStatus.INVALID_K),
    (GovernanceError, GovernanceStatus.UNKNOWN_ID),
    (FeedbackError, FeedbackStatus.EMPTY),
    (CorrectionError, CorrectionStatus.INVALID_POSE),
]


@pytest.mark.parametrize('cls,status', ERRORS)
def test_error_carries_status_and_message(cls, status):
    exc = cls(status, 'what was wrong; accepted: what is')
    assert isinstance(exc, StatusError)
    assert exc.status is status
    assert exc.message == 'what was wrong; accepted: what is'
    # A service response's message is str(exc): the message alone, as before the base existed.
    assert str(exc) == 'what was wrong; accepted: what is'
    assert exc.args == ('what was wrong; accepted: what is',)
    assert repr(exc) == f'{cls.__name__}({status!r}, {exc.message!r})'


@pytest.mark.parametrize('cls,status', ERRORS)
def test_errors_are_still_value_errors(cls, status):
    # Callers catch these as ValueError (e.g. the memory node's pose-correction callback).
    with pytest.raises(ValueError, match='bad'):
        raise cls(status, 'bad')


def test_one_base_catches_every_request_error():
    caught = []
    for cls, status in ERRORS:
        try:
            raise cls(status, cls.__name__)
        except StatusError as exc:
            caught.append((type(exc), int(exc.status)))
    assert caught == [(cls, int(status)) for cls, status in ERRORS]


def test_request_errors_do_not_catch_each_other():
    with pytest.raises(QueryError):
        try:
            raise QueryError(RecallStatus.INVALID_K, 'k')
        except GovernanceError:
            pytest.fail('a QueryError is not a GovernanceError')
