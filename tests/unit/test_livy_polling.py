"""Riding out a Livy that does not answer: one implementation for every wait (no HTTP here; the
integration tests drive the same code through a real proxy answering 502 in front of Livy)."""

from __future__ import annotations

import pytest

from hail_emr_lab.livy import LivyError, LivyHTTPError, LivyNotFound, LivyUnreachable
from hail_emr_lab.livy.polling import Outage, ride_out

FAST = (0.001, 2.0, 0.002)


def scripted(*answers):
    """A fetch that raises or returns each of ``answers`` in turn."""
    queue = list(answers)

    def fetch():
        answer = queue.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return fetch


def never(outage: Outage, exc: LivyError):
    return None


def test_transient_failures_are_retried_and_reported_until_livy_answers():
    calls = []
    fetch = scripted(LivyHTTPError("bad gateway", 502), LivyUnreachable("reset"), "answer")
    assert ride_out(fetch, never, lambda n, err, s: calls.append((n, type(err).__name__)), backoff=FAST) == "answer"
    assert calls == [(1, "LivyHTTPError"), (2, "LivyUnreachable"), (0, "NoneType")]


def test_an_answer_at_once_reports_nothing():
    calls = []
    assert ride_out(scripted(7), never, lambda *a: calls.append(a), backoff=FAST) == 7
    assert calls == []


@pytest.mark.parametrize("error", [LivyNotFound("gone", 404), LivyHTTPError("bad request", 400), LivyError("x")])
def test_other_errors_are_raised_at_once(error):
    seen = []
    with pytest.raises(type(error)):
        ride_out(scripted(error, "never reached"), never, lambda *a: seen.append(a), backoff=FAST)
    assert seen == []


def test_give_up_ends_the_outage_with_its_own_error_naming_the_reason():
    def give_up(outage: Outage, exc: LivyError):
        return LivyUnreachable(f"Livy {outage.reason} ({outage.failures} attempts)") if outage.failures == 2 else None

    fetch = scripted(LivyHTTPError("x", 503), LivyHTTPError("x", 503), "late")
    with pytest.raises(LivyUnreachable, match=r"answered 503 \(2 attempts\)") as info:
        ride_out(fetch, give_up, backoff=FAST)
    assert info.value.__cause__ is None and info.value.__suppress_context__
