"""HTTP calls to a campaign tool, with the retries, backoff and limits its API asks for.

One transport per destination and sync run, over an ``httpx.Client`` (connection reuse):

- **retries** (tenacity) of what time may cure: 429, 500/502/503/504, timeouts and connection
  errors; a 429's or 503's ``Retry-After`` (seconds or an HTTP date) is honoured, capped at
  ``max_backoff_seconds``; otherwise exponential backoff with full jitter from
  ``backoff_seconds``. After ``max_attempts`` the call raises
  :class:`~trebol.activation.destinations.base.TransientDestinationError`. A destination whose
  API signals "try later" with another status (Meta's Graph API: HTTP 400 with a throttling
  error code; a webhook receiver's 409 for a request still in flight) passes ``retryable``, a
  test of the response, and those responses are retried the same way.
- **no retry** of other 4xx: the same request would be refused again
  (:class:`~trebol.activation.destinations.base.DestinationRejected`, naming status, title and
  detail of a problem+json or JSON error body).
- **limits**: at most ``max_concurrency`` requests in flight (Mailchimp allows 10 connections per
  key) and at most ``requests_per_second`` started per second (token bucket), per transport.

Errors are one line naming the destination, method and path (never the base URL's secrets: the
message goes through :func:`trebol.redaction.redact`). Why by hand around httpx and tenacity:
the Airflow HTTP provider's hook retries without Retry-After or a concurrency cap.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import tenacity

from trebol.activation.destinations.base import DestinationRejected, TransientDestinationError
from trebol.redaction import redact

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How a destination's calls are retried and limited (destinations.yml may override)."""

    max_attempts: int = 6
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    timeout_seconds: float = 120.0  # Mailchimp's own request timeout
    max_concurrency: int = 4
    requests_per_second: float | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], **defaults: Any) -> RetryPolicy:
        """The policy from a destination's options (validated by the config loader)."""
        keys = ("max_attempts", "backoff_seconds", "max_backoff_seconds", "timeout_seconds",
                "max_concurrency", "requests_per_second")
        values = {**defaults, **{key: options[key] for key in keys if key in options}}
        return cls(**values)


class _Retryable(Exception):
    """A response or transport error worth another attempt."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_detail(response: httpx.Response) -> str:
    """The vendor's error in one line: problem+json title and detail, or a JSON message."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
    if isinstance(body, dict):
        if "title" in body or "detail" in body:  # problem+json (Mailchimp)
            return ": ".join(str(body[key]) for key in ("title", "detail") if body.get(key))
        error = body.get("error")
        if isinstance(error, dict):  # Graph API (Meta)
            return f"{error.get('message', '')} (code {error.get('code')})"
        if isinstance(error, str) and error:  # {"error": "..."} (webhook receivers, many APIs)
            return error
        if body.get("message"):
            return str(body["message"])
    return str(body)[:200]


class _TokenBucket:
    """At most ``rate`` starts per second, bursts of one second's worth (at least one start:
    below one request per second the bucket must still hold a whole token)."""

    def __init__(self, rate: float, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.capacity = max(1.0, rate)
        self.tokens, self.updated = self.capacity, clock()
        self.lock = threading.Lock()

    def take(self) -> None:
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            self.sleep(wait)


class HttpTransport:
    """Calls to one destination's API under a :class:`RetryPolicy`."""

    def __init__(self, destination: str, base_url: str, policy: RetryPolicy, *,
                 auth: httpx.Auth | tuple[str, str] | None = None,
                 headers: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 retryable: Callable[[httpx.Response], bool] | None = None) -> None:
        self.destination = destination
        self.retryable = retryable  # other responses worth another attempt (beside 429/5xx)
        self.policy = policy
        self.sleep = sleep
        self.client = httpx.Client(base_url=base_url.rstrip("/"), auth=auth,
                                   headers=dict(headers or {}),
                                   timeout=httpx.Timeout(policy.timeout_seconds),
                                   limits=httpx.Limits(max_connections=policy.max_concurrency))
        self.in_flight = threading.BoundedSemaphore(policy.max_concurrency)
        self.bucket = (_TokenBucket(policy.requests_per_second, time.monotonic, sleep)
                       if policy.requests_per_second else None)
        self.attempts = 0  # every attempt made, for the audit and the tests
        self._attempts_lock = threading.Lock()  # += is not atomic across threads

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Retryable) and error.retry_after is not None:
            return min(error.retry_after, self.policy.max_backoff_seconds)
        jitter = tenacity.wait_random_exponential(multiplier=self.policy.backoff_seconds,
                                                  max=self.policy.max_backoff_seconds)
        return jitter(state)

    def _attempt(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self.bucket:
            self.bucket.take()
        with self.in_flight:
            with self._attempts_lock:
                self.attempts += 1
            try:
                response = self.client.request(method, path, **kwargs)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                raise _Retryable(f"{type(error).__name__}: {error}") from None
        if response.status_code in RETRYABLE_STATUSES or (
                self.retryable is not None and response.status_code >= 400 and self.retryable(response)):
            raise _Retryable(f"{response.status_code} {error_detail(response)}".strip(),
                             retry_after_seconds(response.headers.get("Retry-After")))
        return response

    def request(self, method: str, path: str, *, accept: Collection[int] = (),
                **kwargs: Any) -> httpx.Response:
        """One call, retried as the policy says; a 2xx or 3xx response, or an error.
        ``accept``: 4xx statuses returned rather than raised, where they are an answer (a 404
        to an update-only call on what is not there; a 400 about one record)."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.policy.max_attempts),
            wait=self._wait, sleep=self.sleep, reraise=True,
            retry=tenacity.retry_if_exception_type(_Retryable))
        try:
            response = retrying(self._attempt, method, path, **kwargs)
        except _Retryable as error:
            raise TransientDestinationError(redact(
                f"{self.destination}: {method} {path}: {error} "
                f"(after {self.policy.max_attempts} attempts)")) from None
        if response.status_code >= 400 and response.status_code not in accept:
            raise DestinationRejected(redact(
                f"{self.destination}: {method} {path}: {response.status_code} "
                f"{error_detail(response)}".strip()))
        return response
