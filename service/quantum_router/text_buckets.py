"""The logged form of a prompt's words: its hashed n-gram buckets, packed into a few bytes.

Why: ``train --from-log`` can only refit the policy's text model on new prompts if the log keeps what the
model reads, and the log must not keep the prompt itself. So an experience stores the sorted distinct
bucket indices that ``TextHashing.buckets_of`` gives (the same array the text model scores, so nothing is
hashed twice), with the hashing that made them. This is not anonymisation: a unigram's bucket can be found
by hashing a vocabulary, so the words of a prompt can partly be guessed back; their order, counts and
anything past ``max_chars`` cannot.

Layout (little-endian): version byte 1, ``ngram_max`` (uint8), ``buckets`` (uint32), ``max_chars`` (uint32),
then the indices as uint16 when ``buckets`` <= 65,536, else uint32.
"""

from __future__ import annotations

import struct

import numpy as np

from quantum_router.text_model import IntArray, TextHashing

_VERSION = 1
_HEADER = struct.Struct("<BBII")


def _dtype(buckets: int) -> str:
    return "<u2" if buckets <= 1 << 16 else "<u4"


def encode_buckets(ngrams: IntArray, hashing: TextHashing) -> bytes:
    """``ngrams`` (sorted distinct bucket indices of one prompt under ``hashing``) as bytes for the log."""
    header = _HEADER.pack(_VERSION, hashing.ngram_max, hashing.buckets, hashing.max_chars)
    return header + np.asarray(ngrams, dtype=_dtype(hashing.buckets)).tobytes()


def decode_buckets(blob: bytes) -> tuple[TextHashing, IntArray]:
    """Inverse of :func:`encode_buckets`; raises ValueError on bytes it did not write."""
    if len(blob) < _HEADER.size:
        raise ValueError("text buckets: shorter than their header")
    version, ngram_max, buckets, max_chars = _HEADER.unpack_from(blob)
    if version != _VERSION:
        raise ValueError(f"text buckets: unknown format version {version}")
    dtype = np.dtype(_dtype(buckets))
    body = blob[_HEADER.size :]
    if len(body) % dtype.itemsize:
        raise ValueError("text buckets: body is not a whole number of indices")
    hashing = TextHashing(buckets=buckets, ngram_max=ngram_max, max_chars=max_chars)
    return hashing, np.frombuffer(body, dtype=dtype).astype(np.int64)
