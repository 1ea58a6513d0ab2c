"""One retry loop for every HTTP integration: a time budget, honest waits, and retries only when safe.

An adapter builds one :class:`Retrier` and runs each logical call through :meth:`Retrier.call`
under a :class:`Budget` (a total time, shared by the call's nested look-ups):

* each attempt gets ``request_timeout`` seconds, capped by what is left of the budget;
* 429: wait what ``Retry-After`` (seconds or an HTTP date) or ``ratelimit-reset`` asks, else a
  short backoff, but only when the wait fits in the remaining budget; otherwise give up at once;
* 5xx and network errors: exponential backoff (0.5 s, 1 s, 2 s, ...), only for calls made as
  idempotent, after the caller's ``before_retry_after_ambiguity`` hook (e.g. a look-up by key)
  when the failed attempt may have been processed; a non-idempotent call is repeated only when
  the server surely did not process it (a 429, or a connection that never got established).

Which answers and exceptions are failures is the :class:`Classifier`'s business, so that other
transports (botocore, the kubernetes client) can plug in their own;
:class:`opsctl.integrations.http.HttpClassifier` reads ``httpx`` and ``httpx2`` (the ``pagerduty``
client's fork) alike. Nothing here knows a transport. Every failure is an :class:`~opsctl.errors.UpstreamError` (exit 4)
whose text passes through :func:`opsctl.redact.redact`; a request that could not even be sent
(an illegal header value) is described without the exception's text, which quotes the header.
``sleep`` and ``monotonic`` are injectable; whatever ``sleep`` raises (KeyboardInterrupt from an
interruptible runner) propagates untouched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from opsctl import redact, tracing
from opsctl.errors import UpstreamError

BACKOFF_INITIAL = 0.5  # seconds before the 2nd attempt after a 5xx / network error
BACKOFF_MAX = 4.0
MAX_ATTEMPTS = 10  # HTTP attempts per budget, whatever its time says
MIN_ATTEMPT_TIME = 0.1  # an attempt with less time than this left is not worth starting
_TEXT_LIMIT = 300

T = TypeVar("T")


def truncate(text: str) -> str:
    """One line of at most 300 characters."""
    text = " ".join(text.split())
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass
class Budget:
    """The time and attempts one logical call may spend (shared by its nested look-ups)."""

    total: float
    monotonic: Callable[[], float] = time.monotonic
    started: float = field(init=False)
    attempts: int = 0
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = self.monotonic()

    def elapsed(self) -> float:
        return max(0.0, self.monotonic() - self.started)

    def remaining(self) -> float:
        return self.total - self.elapsed()

    def share(self, fraction: float) -> Budget:
        """A budget of its own for an optional step: at most ``fraction`` of the total, and of what is left."""
        return Budget(max(0.0, min(self.total * fraction, self.remaining())), self.monotonic)


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as a :class:`Classifier` sees it.

    ``sent``: the server may have processed the request (retrying then needs idempotence);
    ``answered``: it is an HTTP answer (a 5xx), not a network error; ``retry``: False when
    trying again cannot help (TLS verification, a request that cannot be sent); ``wait``: the
    wait the server asked for (429), None for the backoff; ``kind`` picks a hint for final failures.
    """

    problem: str
    kind: str
    sent: bool
    answered: bool = False
    retry: bool = True
    wait: float | None = None


class Classifier(Protocol):
    """What counts as a failed attempt for one transport."""

    def error(self, exc: Exception, timeout: float) -> Failure | None:
        """The failure an exception from ``send`` stands for; None: not a transport error, re-raise it."""
        ...

    def answer(self, response: Any) -> Failure | None:
        """The failure an answer stands for (429, 5xx); None: hand it back to the caller."""
        ...


# ----------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------


class Retrier:
    """The retrying loop of one integration. Not for concurrent use from several threads.

    ``name`` is how messages call the system ("PagerDuty", "Vault at http://…"); ``address``
    is added to messages about a connection that cannot work (TLS). ``hint`` goes with "unreachable"
    errors, ``not_retried_hint`` with refused retries of non-idempotent calls, and ``hints`` maps a
    :attr:`Failure.kind` to the hint of a final failure of that kind.
    """

    def __init__(
        self,
        name: str,
        *,
        request_timeout: float,
        classifier: Classifier,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        address: str | None = None,
        hint: str | None = None,
        not_retried_hint: str | None = None,
        hints: Mapping[str, str] | None = None,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        max_attempts: int = MAX_ATTEMPTS,
        min_attempt_time: float = MIN_ATTEMPT_TIME,
        log: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.request_timeout = request_timeout
        self.classifier = classifier
        self.sleep = sleep
        self.monotonic = monotonic
        self.address = address
        self.hint = hint
        self.not_retried_hint = not_retried_hint
        self.hints = dict(hints or {})
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_attempts = max_attempts
        self.min_attempt_time = min_attempt_time
        self.log = log or logging.getLogger("opsctl.retry")

    def budget(self, total: float) -> Budget:
        return Budget(total, self.monotonic)

    def backoff(self, attempt: int) -> float:
        return float(min(self.backoff_max, self.backoff_initial * 2 ** (attempt - 1)))

    def call(
        self,
        send: Callable[[float], T],
        what: str,
        budget: Budget,
        *,
        idempotent: bool,
        before_retry_after_ambiguity: Callable[[], None] | None = None,
    ) -> T:
        """``send(timeout)`` until an answer that is no failure, within ``budget``; UpstreamError otherwise.

        ``what`` names the request in messages ("POST /incidents"). Exceptions the classifier does
        not claim, and whatever the hook or ``sleep`` raises, propagate untouched.
        """
        attempt = 0
        lookup_pending = False
        while True:
            if lookup_pending and before_retry_after_ambiguity is not None:
                before_retry_after_ambiguity()  # raises to end the call when the work was done
                lookup_pending = False
            remaining = budget.remaining()
            if budget.attempts >= self.max_attempts or remaining < self.min_attempt_time:
                raise self._exhausted(budget)
            timeout = min(self.request_timeout, remaining)
            attempt += 1
            budget.attempts += 1
            began = self.monotonic()
            try:
                with tracing.span():
                    result = send(timeout)
            except Exception as exc:
                failure = self.classifier.error(exc, timeout)
                if failure is None:
                    raise
                shown = failure.problem
            else:
                failure = self.classifier.answer(result)
                shown = str(getattr(result, "status_code", "answer"))
                if failure is None:
                    self._debug("%s attempt %d: %s in %.2fs", what, attempt, shown, self.monotonic() - began)
                    return result
            self._debug("%s attempt %d: %s in %.2fs", what, attempt, shown, self.monotonic() - began)
            wait = self._judge(failure, what, attempt, budget, idempotent=idempotent)
            left = budget.remaining()
            if wait + self.min_attempt_time > left or budget.attempts >= self.max_attempts:
                self._debug("%s: giving up, a %.2fs wait does not fit the %.2fs left", what, wait, left)
                raise self._exhausted(budget, wait=wait, left=left)
            self._debug("%s: waiting %.2fs before attempt %d", what, wait, attempt + 1)
            if wait > 0:
                self.sleep(wait)
            lookup_pending = lookup_pending or (failure.sent and idempotent)

    def _judge(self, failure: Failure, what: str, attempt: int, budget: Budget, *, idempotent: bool) -> float:
        """The wait before the next attempt; raises when there must be none."""
        if not failure.retry:
            where = f" at {self.address}" if self.address else ""
            raise UpstreamError(redact.redact(f"{self.name}{where}: {failure.problem}"), self.hints.get(failure.kind))
        wait = failure.wait if failure.wait is not None else self.backoff(attempt)
        problem = failure.problem
        if failure.kind == "rate_limited":
            problem += f", asked to wait {wait:g}s"
        budget.problems.append(problem)
        if failure.sent and not idempotent:
            text = (
                f"{self.name} answered {what} with {problem}"
                if failure.answered
                else f"{self.name} {what} failed: {problem}"
            )
            raise UpstreamError(
                redact.redact(f"{text}; not retried, it may have been processed"), self.not_retried_hint
            )
        return wait

    def _exhausted(self, budget: Budget, *, wait: float | None = None, left: float | None = None) -> UpstreamError:
        problem = budget.problems[-1] if budget.problems else "no attempt could be made"
        if wait is not None and left is not None and wait + self.min_attempt_time > left:
            problem += (
                f" (a {wait:g}s wait does not fit the {max(left, 0.0):.1f}s left of the {budget.total:g}s budget)"
            )
        attempts = plural(budget.attempts, "attempt")
        message = f"{self.name} unreachable after {attempts} in {budget.elapsed():.1f}s: {problem}"
        return UpstreamError(redact.redact(message), self.hint)

    def _debug(self, message: str, *args: object) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("%s " + message, self.name, *args)
