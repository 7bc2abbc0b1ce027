"""The spool ledger: which spool files (records a process could not write before it exited,
kept on its disk) have been written, in the same transaction as their rows, so that a file is
written exactly once even when the process that delivered it dies before deleting it.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "spooled",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("written_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spooled")
