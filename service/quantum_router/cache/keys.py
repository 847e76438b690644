"""Cache keys: a digest over everything that changes the answer, and nothing that does not."""

from __future__ import annotations

import hashlib
import json
import re

_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


def cache_prompt(prompt: str) -> str:
    """The prompt as the cache compares it: line endings as ``\\n`` and trailing spaces and blank lines
    dropped, nothing else. Case and inner whitespace stay significant: in code, ``x`` is not ``X`` and
    indentation is syntax, so folding them would serve one prompt's answer for another."""
    text = prompt.replace("\r\n", "\n").replace("\r", "\n")
    return _TRAILING_SPACE.sub("", text).rstrip("\n")


def response_key(
    prompt: str,
    persona: str,
    task_type: str,
    model: str | None,
    variations: int,
    max_tokens: int,
    scope: str | None = None,
    upstream: str = "",
) -> str:
    """Key for a response. ``scope`` (a user id, or None for one cache shared by everyone) keeps one
    user's entries out of every other user's reach. ``upstream`` is a chat request's conversation and
    sampling parameters (canonical JSON), sent verbatim and so keyed verbatim."""
    material = json.dumps(
        [scope, cache_prompt(prompt), persona, task_type, model, variations, max_tokens, upstream],
        separators=(",", ":"),
    )
    return "resp:" + hashlib.blake2b(material.encode(), digest_size=20).hexdigest()
