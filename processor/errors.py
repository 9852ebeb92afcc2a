"""One exception hierarchy; each class says what the caller must do."""

from __future__ import annotations


class BillingError(Exception):
    """Base of every error the processor raises on purpose."""


class SettingsError(BillingError):
    """The environment or the configuration files are wrong: refuse to start."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))


class BadSignature(BillingError):
    """The request is not from Meta (or not signed with our app secret): reject with 401."""


class BadPayload(BillingError):
    """The input cannot be understood: reject with 400 at the edge, quarantine in a worker."""


class StoreUnavailable(BillingError):
    """Redis cannot be reached: answer 503 at the edge (Meta retries), retry in workers."""
