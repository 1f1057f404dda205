"""The mapping from ``huggingface_hub``/transport errors to hfcl's typed Hub errors (defined in :mod:`hfcl.errors`)."""

from __future__ import annotations

from ..errors import (  # the classes live in hfcl.errors; re-exported here for compatibility
    HfclError,
    HubAuthError,
    HubError,
    HubPaymentRequiredError,
    HubUnavailableError,
    RunDirError,
    TokenLeakError,
)

__all__ = [
    "LOGIN_HINT",
    "HubAuthError",
    "HubError",
    "HubPaymentRequiredError",
    "HubUnavailableError",
    "RunDirError",
    "TokenLeakError",
    "hub_cause",
    "is_transient",
    "status_of",
    "translate",
]

LOGIN_HINT = ("Log in with `hf auth login` (or set the HF_TOKEN environment variable) using a token with *write* "
              "access: https://huggingface.co/settings/tokens")


def hub_cause(exc: BaseException) -> BaseException:
    """The HTTP or transport error behind ``exc`` (the client wraps LFS upload failures in ``RuntimeError``)."""
    from huggingface_hub.utils import httpx

    seen, current = set(), exc
    while current is not None and id(current) not in seen:
        if getattr(current, "response", None) is not None or isinstance(current, httpx.HTTPError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return exc


def status_of(exc: BaseException) -> int | None:
    """HTTP status of a ``huggingface_hub`` HTTP error (``None`` for transport errors and others)."""
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: 5xx, 429 and transport errors (connection refused/reset, timeouts)."""
    from huggingface_hub.utils import httpx

    exc = hub_cause(exc)
    if isinstance(exc, httpx.TransportError):
        return True
    status = status_of(exc)
    return status is not None and (status >= 500 or status == 429)


def translate(exc: BaseException, action: str, target: str, attempts: int = 1) -> HfclError | None:
    """An hfcl error for ``exc`` raised while doing ``action`` on ``target``; ``None`` if it is not a Hub error."""
    from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError
    from huggingface_hub.utils import httpx

    if isinstance(exc, ValueError) and str(exc).startswith("Invalid metadata in README.md"):
        details = " ".join(line.strip() for line in str(exc).splitlines()[1:])
        return HubError(f"The Hub rejected the card's YAML metadata while trying to {action} {target}: {details} "
                        "Fix the README front matter (or use card='render'); nothing was committed.")
    exc = hub_cause(exc)
    status = status_of(exc)
    if status == 401:
        return HubAuthError(f"The Hub refused the credentials while trying to {action} {target} (401). {LOGIN_HINT}")
    if status == 403:
        return HubAuthError(f"Forbidden (403) while trying to {action} {target}: your token cannot write there. Use a "
                            f"token with write access to that namespace (a fine-grained token needs write permission "
                            f"on it; for an organization you must be a member with write rights). {LOGIN_HINT}")
    if status == 402:
        return HubPaymentRequiredError(
            f"Payment required (402) while trying to {action} {target}. The Hub needs a paid plan for this: Gradio "
            "and Docker Spaces run on compute that requires PRO, Team or Enterprise. Options: upgrade the account or "
            "push to an organization with a plan, use ZeroGPU if available to you, or run the demo locally with "
            "`hfcl space`.")
    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"Revision not found while trying to {action} {target}: {exc}")
    if is_transient(exc):
        kind = f"HTTP {status}" if status else type(exc).__name__
        return HubUnavailableError(
            f"The Hub did not answer properly while trying to {action} {target} ({kind}, {attempts} attempt(s)): "
            f"{_first_line(exc)}. Nothing was committed: a commit is all or nothing. Re-run the same command later; "
            "files already on the Hub are not uploaded again.")
    if isinstance(exc, (HfHubHTTPError, httpx.HTTPError)):
        return HubError(f"Could not {action} {target}: {_first_line(exc)}")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
