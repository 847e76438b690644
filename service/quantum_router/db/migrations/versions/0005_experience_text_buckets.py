"""experiences.text_buckets: the prompt's hashed n-gram buckets (never the prompt) when the serving policy
has a text model, so that ``train --from-log`` can refit that model on judged rows; NULL otherwise

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("experiences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_buckets", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiences", schema=None) as batch_op:
        batch_op.drop_column("text_buckets")
