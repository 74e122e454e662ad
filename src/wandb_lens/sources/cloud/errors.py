"""W&B request failures as clear messages: the cause, what to do, and never the API key."""

from __future__ import annotations

import re

RETRIES = 2  # bounded retries of every W&B request


def scrub(text: str, key: str | None) -> str:
    if key and len(key) >= 8:
        text = text.replace(key, "***")
    return text


def explain(exc: BaseException, what: str, key: str | None, base_url: str, timeout: float) -> str:
    """A W&B failure as a message that says the cause and what to do, without the key."""
    msg = scrub(" ".join(str(exc).split()), key)
    # classify on the text without URLs: a port like :40141 must not read as HTTP 401
    low = re.sub(r"\w+://\S+", " ", msg.lower())
    name = type(exc).__name__
    if "not logged in" in low or re.search(r"(?<!\d)401(?!\d)", low) or "unauthorized" in low or (
            name == "AuthenticationError" and "giving up" not in low and "in time" not in low):
        return (f"W&B at {base_url} rejected the API key (401 / not logged in). Check WANDB_API_KEY or "
                "`wandb login`, or the key sent as `Authorization: Bearer <key>`.")
    if "did not respond in time" in low or "timed out" in low or "deadline" in low:
        return (f"W&B at {base_url} did not answer within {timeout:.0f} s ({what}); it may be down or "
                "slow. Retry later, check WANDB_BASE_URL, or raise WANDB_LENS_TIMEOUT.")
    if "giving up after" in low and "http 5" in low:
        return (f"W&B at {base_url} failed with a server error ({msg[msg.lower().find('http 5'):][:60]}) "
                f"after {RETRIES + 1} attempts ({what}). Retry later.")
    if "connection refused" in low or "no such host" in low or "dial tcp" in low:
        return f"Cannot reach W&B at {base_url} ({what}): {msg[:200]}. Check WANDB_BASE_URL and the network."
    if "permission" in low or re.search(r"(?<!\d)403(?!\d)", low):
        return f"This W&B key may not read that ({what}): {msg[:200]}."
    return f"W&B request failed ({what}): {msg[:300]}"
