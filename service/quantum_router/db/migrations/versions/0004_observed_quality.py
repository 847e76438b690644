"""experiences.quality_source: where a logged quality came from (rating, judge, verifier, agreement,
failure); quality and reward become nullable, NULL when no outcome was observed

Rows logged before this revision keep their quality with a NULL source: most of them are the scorer's
prior for the chosen model, not an observation, so the learner no longer trains on them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("experiences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quality_source", sa.String(length=16), nullable=True))
        batch_op.alter_column("quality", existing_type=sa.Float(), nullable=True)
        batch_op.alter_column("reward", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    # Unobserved rows had no label; the old schema needs one, so they get 0 (and keep no source).
    op.execute("UPDATE experiences SET quality = 0 WHERE quality IS NULL")
    op.execute("UPDATE experiences SET reward = 0 WHERE reward IS NULL")
    with op.batch_alter_table("experiences", schema=None) as batch_op:
        batch_op.alter_column("reward", existing_type=sa.Float(), nullable=False)
        batch_op.alter_column("quality", existing_type=sa.Float(), nullable=False)
        batch_op.drop_column("quality_source")
