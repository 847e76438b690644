"""Cache keys: a digest over everything that changes the answer, and nothing that does not."""

from __future__ import annotations

import hashlib
import json

from quantum_router.features import normalise_prompt


def response_key(
    prompt: str,
    persona: str,
    task_type: str,
    model: str | None,
    variations: int,
    max_tokens: int,
    upstream: str = "",
) -> str:
    """Key for a response; prompts equal up to case and whitespace share it. ``upstream`` is a chat
    request's conversation and sampling parameters (canonical JSON), sent verbatim and so keyed verbatim."""
    material = json.dumps(
        [normalise_prompt(prompt), persona, task_type, model, variations, max_tokens, upstream],
        separators=(",", ":"),
    )
    return "resp:" + hashlib.blake2b(material.encode(), digest_size=20).hexdigest()
