"""The first schema: production solves, fallback/refusal events, the alert log and outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "solves",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False, index=True),
        sa.Column("template_id", sa.String(200), nullable=False, index=True),
        sa.Column("params_source", sa.String(500), nullable=False),
        sa.Column("version", sa.String(50)),
        sa.Column("jobs", sa.Integer),
        sa.Column("tasks", sa.Integer),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("objective", sa.BigInteger),
        sa.Column("best_bound", sa.Float),
        sa.Column("solve_time_s", sa.Float, nullable=False),
        sa.Column("build_time_s", sa.Float),
        sa.Column("peak_rss_mb", sa.Float),
        sa.Column("fallback", sa.Boolean, nullable=False),
        sa.Column("host", sa.String(64), nullable=False),
        sa.Column("ortools_version", sa.String(30)),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False, index=True),
        sa.Column("template_id", sa.String(200), index=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("host", sa.String(64), nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("template_id", sa.String(200)),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("resolved_at", sa.Float),
        sa.Column("last_seen_at", sa.Float, nullable=False),
        sa.Column("last_notified_at", sa.Float),
        sa.Column("notifications", sa.Integer, nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False, index=True),
        sa.Column("delivered_at", sa.Float),
        sa.Column("gave_up_at", sa.Float),
        sa.Column("last_error", sa.Text),
    )


def downgrade() -> None:
    for table in ("deliveries", "alerts", "events", "solves"):
        op.drop_table(table)
