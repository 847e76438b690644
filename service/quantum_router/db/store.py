"""The queries the service runs, one small function each; routes never touch SQLAlchemy directly."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from quantum_router.db.models import ApiKey, Experience, Job, PolicyArtifact, User, utcnow


async def user_by_name(session: AsyncSession, username: str) -> User | None:
    """The user called ``username``."""
    return (await session.execute(select(User).where(User.username == username))).scalar_one_or_none()


async def user_by_id(session: AsyncSession, user_id: str) -> User | None:
    """The user with primary key ``user_id``."""
    return await session.get(User, user_id)


async def add_user(session: AsyncSession, username: str, password_hash: str, roles: list[str]) -> User:
    """Insert a user."""
    user = User(username=username, password_hash=password_hash, roles=roles)
    session.add(user)
    await session.flush()
    return user


async def set_password(session: AsyncSession, user: User, password_hash: str) -> None:
    """Replace a user's password; bearer tokens issued before now stop working."""
    user.password_hash = password_hash
    user.tokens_valid_after = _whole_second(utcnow())
    await session.flush()


async def set_disabled(session: AsyncSession, user: User, disabled: bool) -> None:
    """Disable or re-enable a user; disabling also ends every bearer token issued so far."""
    user.disabled = disabled
    if disabled:
        user.tokens_valid_after = _whole_second(utcnow())
    await session.flush()


def _whole_second(moment: datetime) -> datetime:
    # Token issue times are whole seconds: a cut-off with a fraction would refuse a token issued in the
    # same second after it (at the cost of accepting one issued in that second before it).
    return moment.replace(microsecond=0)


async def api_keys_of(session: AsyncSession, user_id: str) -> Sequence[ApiKey]:
    """A user's API keys, oldest first."""
    query = select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at, ApiKey.id)
    return (await session.execute(query)).scalars().all()


async def revoke_api_key(session: AsyncSession, prefix: str) -> bool:
    """Mark the key with this prefix revoked; False when there is none."""
    result = await session.execute(update(ApiKey).where(ApiKey.prefix == prefix).values(revoked=True))
    return bool(getattr(result, "rowcount", 0))


async def api_key_by_prefix(session: AsyncSession, prefix: str) -> tuple[ApiKey, User] | None:
    """An active API key with its owner."""
    row = (
        await session.execute(
            select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.prefix == prefix)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def add_api_key(session: AsyncSession, user_id: str, name: str, prefix: str, key_hash: str) -> ApiKey:
    """Insert an API key record."""
    key = ApiKey(user_id=user_id, name=name, prefix=prefix, key_hash=key_hash)
    session.add(key)
    await session.flush()
    return key


async def add_experience(session: AsyncSession, **fields: Any) -> Experience:
    """Insert an experience."""
    experience = Experience(**fields)
    session.add(experience)
    await session.flush()
    return experience


async def add_experiences(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert a batch of experiences (each row carries its id) in one executemany; a Core insert, because
    the ORM's unit of work cost more CPU than the statement itself for these write-only rows."""
    await session.execute(insert(Experience), rows)


async def experience_by_id(session: AsyncSession, experience_id: str) -> Experience | None:
    """One experience."""
    return await session.get(Experience, experience_id)


async def set_feedback(
    session: AsyncSession,
    experience_id: str,
    rating: float,
    comment: str | None,
    quality: float,
    reward: float,
) -> None:
    """Record a user's rating, the quality it maps to (source ``rating``) and the reward from it."""
    await session.execute(
        update(Experience)
        .where(Experience.id == experience_id)
        .values(
            feedback_rating=rating,
            feedback_comment=comment,
            feedback_at=utcnow(),
            quality=quality,
            quality_source="rating",
            reward=reward,
        )
    )


async def set_judged_quality(
    session: AsyncSession, experience_id: str, quality: float, reward: float
) -> bool:
    """Record a judge's verdict unless the experience has a rating (feedback keeps precedence); True when
    written. One conditional UPDATE, so a rating that lands at the same time is never overwritten."""
    result = await session.execute(
        update(Experience)
        .where(Experience.id == experience_id, Experience.feedback_rating.is_(None))
        .values(quality=quality, quality_source="judge", reward=reward)
    )
    return bool(getattr(result, "rowcount", 0))


async def recent_experiences(session: AsyncSession, user_id: str, limit: int) -> Sequence[Experience]:
    """A user's newest experiences first."""
    query = (
        select(Experience)
        .where(Experience.user_id == user_id)
        .order_by(Experience.created_at.desc(), Experience.id)
        .limit(limit)
    )
    return (await session.execute(query)).scalars().all()


async def experiences_since(
    session: AsyncSession, since: datetime | None, limit: int, cache_hits: bool = False
) -> Sequence[Experience]:
    """The newest ``limit`` experiences for training, returned oldest first (cache hits carry no new
    information and are left out)."""
    query = select(Experience).order_by(Experience.created_at.desc(), Experience.id.desc()).limit(limit)
    if since is not None:
        query = query.where(Experience.created_at >= since)
    if not cache_hits:
        query = query.where(Experience.cache_hit.is_(False))
    return list(reversed((await session.execute(query)).scalars().all()))


async def add_job(session: AsyncSession, user_id: str, request: dict[str, Any], owner: str) -> Job:
    """Insert a pending job run by process ``owner``, its lease renewed from now on."""
    job = Job(user_id=user_id, status="pending", request=request, owner=owner, heartbeat_at=utcnow())
    session.add(job)
    await session.flush()
    return job


async def job_by_id(session: AsyncSession, job_id: str) -> Job | None:
    """One job."""
    return await session.get(Job, job_id)


async def finish_job(
    session: AsyncSession, job_id: str, result: dict[str, Any] | None, error: dict[str, Any] | None
) -> bool:
    """Store a pending job's result or error; False when the job had already ended (a lapsed lease failed
    it meanwhile), which is then left as it was: a final state is final."""
    status = "succeeded" if error is None else "failed"
    outcome = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "pending")
        .values(status=status, result=result, error=error, updated_at=utcnow())
    )
    return bool(getattr(outcome, "rowcount", 0))


async def pending_jobs_of(session: AsyncSession, user_id: str) -> int:
    """How many of a user's jobs are still running."""
    query = select(func.count()).select_from(Job).where(Job.user_id == user_id, Job.status == "pending")
    return int((await session.execute(query)).scalar_one())


async def purge_jobs(session: AsyncSession, finished_before: datetime) -> int:
    """Delete the jobs that ended before ``finished_before`` (their results with them)."""
    outcome = await session.execute(
        delete(Job).where(Job.status != "pending", Job.updated_at < finished_before)
    )
    return int(getattr(outcome, "rowcount", 0) or 0)


async def renew_job_leases(session: AsyncSession, owner: str) -> int:
    """Renew the lease of every pending job of process ``owner``."""
    outcome = await session.execute(
        update(Job).where(Job.owner == owner, Job.status == "pending").values(heartbeat_at=utcnow())
    )
    return int(getattr(outcome, "rowcount", 0) or 0)


async def fail_jobs(
    session: AsyncSession, detail: str, *, owner: str | None = None, lapsed_before: datetime | None = None
) -> int:
    """Fail pending jobs as interrupted: those of process ``owner``, or those whose lease was last renewed
    before ``lapsed_before`` (a job without a lease, from before leases, counts from its last update)."""
    query = update(Job).where(Job.status == "pending")
    if owner is not None:
        query = query.where(Job.owner == owner)
    if lapsed_before is not None:
        query = query.where(func.coalesce(Job.heartbeat_at, Job.updated_at) < lapsed_before)
    outcome = await session.execute(
        query.values(status="failed", error={"status": 503, "detail": detail}, updated_at=utcnow())
    )
    return int(getattr(outcome, "rowcount", 0) or 0)


# By publication time, as the poller compares them: concurrent publishers can insert out of that order.
_NEWEST_POLICY_FIRST = (PolicyArtifact.created_at.desc(), PolicyArtifact.id.desc())


async def latest_policy(session: AsyncSession) -> PolicyArtifact | None:
    """The most recently published policy."""
    query = select(PolicyArtifact).order_by(*_NEWEST_POLICY_FIRST).limit(1)
    return (await session.execute(query)).scalar_one_or_none()


async def latest_policy_stamp(session: AsyncSession) -> tuple[str, datetime] | None:
    """Version and publication time of the newest policy (cheap to poll)."""
    query = select(PolicyArtifact.version, PolicyArtifact.created_at).order_by(*_NEWEST_POLICY_FIRST).limit(1)
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


async def published_policies(session: AsyncSession, limit: int) -> Sequence[PolicyArtifact]:
    """The newest published policies first."""
    query = select(PolicyArtifact).order_by(*_NEWEST_POLICY_FIRST).limit(limit)
    return (await session.execute(query)).scalars().all()


async def add_policy(session: AsyncSession, version: str, data: bytes, published: datetime) -> None:
    """Publish a policy artifact."""
    session.add(PolicyArtifact(version=version, data=data, created_at=published))
    await session.flush()
