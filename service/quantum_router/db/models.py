"""Tables (SQLAlchemy 2.0 typed mappings). API shapes live in ``api/schemas.py``, not here."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """Timezone-aware now."""
    return datetime.now(UTC)


def new_id() -> str:
    """A random UUID string primary key."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Declarative base of every table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    """A person or service that calls the API."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[Any]] = mapped_column(default=list)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Bearer tokens issued before this (a password rotation, a disable) are refused; None: all are valid.
    tokens_valid_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiKey(Base):
    """A long-lived credential; only a SHA-256 digest of the secret is stored."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Experience(Base):
    """One routed execution: the context, the action and its propensity, and the outcome."""

    __tablename__ = "experiences"
    __table_args__ = (Index("ix_experiences_user_created", "user_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    prompt_hash: Mapped[str] = mapped_column(String(64))
    persona: Mapped[str] = mapped_column(String(64))
    task_type: Mapped[str] = mapped_column(String(64))
    features: Mapped[dict[str, Any]] = mapped_column()
    # The prompt's hashed n-gram buckets (``text_buckets.encode_buckets``) when the serving policy has a text
    # model, so ``train --from-log`` can refit it; never the prompt. NULL otherwise (and for cache hits).
    text_buckets: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    action: Mapped[str] = mapped_column(String(128), index=True)
    propensity: Mapped[float] = mapped_column(Float)
    explored: Mapped[bool] = mapped_column(Boolean, default=False)
    variations: Mapped[list[Any]] = mapped_column(default=list)
    # The label the learner trains on: an outcome that was observed, and where it came from (see
    # ``outcomes.QualitySource``). Both are NULL when nothing was observed (one answer, no verifier, no
    # judge yet): the scorer's prior for the model is not an observation and is not logged as one.
    quality: Mapped[float | None] = mapped_column(Float, nullable=True)
    quality_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    cost_usd: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    # Reward parts: reward = (feedback quality if rated, else quality) - cost_penalty - latency_penalty;
    # NULL while the quality is.
    cost_penalty: Mapped[float] = mapped_column(Float, default=0.0)
    latency_penalty: Mapped[float] = mapped_column(Float, default=0.0)
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    policy_version: Mapped[str] = mapped_column(String(64), index=True)
    feedback_rating: Mapped[float | None] = mapped_column(Float, nullable=True)
    feedback_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    feedback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Job(Base):
    """An asynchronous execution and, once finished, its result."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    request: Mapped[dict[str, Any]] = mapped_column()
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Indexed: the retention purge deletes by it.
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True
    )
    # The process running a pending job, and when it last renewed its lease; a job whose lease lapsed
    # lost its process and is failed by whichever replica notices.
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PolicyArtifact(Base):
    """A published routing policy; service replicas load the newest."""

    __tablename__ = "policies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    data: Mapped[bytes] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
