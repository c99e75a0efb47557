"""Token books: counts reserved for an agent, the devices on them, the hand-outs synced.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "books",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("agent_key_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("menu", sa.Text(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("value_cap_days", sa.String(length=40), nullable=False),
        sa.Column("value_days", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=120), nullable=True),
        sa.Column("close_decision", sa.String(length=20), nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_key_id"], ["api_keys.id"], name=op.f("fk_books_agent_key_id_api_keys")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_books_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_books")),
    )
    with op.batch_alter_table("books", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_books_agent_key_id"), ["agent_key_id"], unique=False)
        batch_op.create_index("ix_books_tenant_id_status", ["tenant_id", "status"], unique=False)

    op.create_table(
        "book_devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("book_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("count_before", sa.Integer(), nullable=False),
        sa.Column("first_count", sa.Integer(), nullable=False),
        sa.Column("last_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["book_id"], ["books.id"], name=op.f("fk_book_devices_book_id_books")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_book_devices_device_id_devices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_book_devices")),
        sa.UniqueConstraint("book_id", "device_id", name=op.f("uq_book_devices_book_id")),
    )
    with op.batch_alter_table("book_devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_book_devices_device_id"), ["device_id"], unique=False)

    op.create_table(
        "book_handouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("book_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("days", sa.String(length=40), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("handed_out_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("synced_by", sa.String(length=120), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["book_id"], ["books.id"], name=op.f("fk_book_handouts_book_id_books")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_book_handouts_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_book_handouts_payment_id_payments")
        ),
        sa.ForeignKeyConstraint(
            ["token_id"], ["tokens.id"], name=op.f("fk_book_handouts_token_id_tokens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_book_handouts")),
        sa.UniqueConstraint("book_id", "client_id", name=op.f("uq_book_handouts_book_id")),
    )
    with op.batch_alter_table("book_handouts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_book_handouts_book_id_device_id_count",
            ["book_id", "device_id", "count"],
            unique=False,
        )

    # A plain ADD COLUMN (no constraint), which SQLite does without rebuilding the table.
    op.add_column("devices", sa.Column("book_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("book_id")
    with op.batch_alter_table("book_handouts", schema=None) as batch_op:
        batch_op.drop_index("ix_book_handouts_book_id_device_id_count")
    op.drop_table("book_handouts")
    with op.batch_alter_table("book_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_book_devices_device_id"))
    op.drop_table("book_devices")
    with op.batch_alter_table("books", schema=None) as batch_op:
        batch_op.drop_index("ix_books_tenant_id_status")
        batch_op.drop_index(batch_op.f("ix_books_agent_key_id"))
    op.drop_table("books")
