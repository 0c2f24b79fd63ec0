"""fenced batch lock: a generation number on the lock row, abandoned runs in the run history

``batch_locks.generation`` is incremented every time the lock changes hands (taken when free, or taken
over from a dead or stale holder). A phase keeps the ``(run_id, generation)`` it started under and
checks it inside the transaction of every write (:func:`shared.locking.fenced_transaction`); a phase
whose run lost the lock writes nothing. The row is kept when the lock is released (``run_id`` empty),
so the generation never goes back.

``batch_run_history.abandoned_at`` / ``abandoned_by``: when a run was given up, and by what (the run that
took its lock over, a signal, or ``sigmabatch unlock``).

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batch_locks") as batch:
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("batch_run_history") as batch:
        batch.add_column(sa.Column("abandoned_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("abandoned_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batch_run_history") as batch:
        batch.drop_column("abandoned_by")
        batch.drop_column("abandoned_at")
    with op.batch_alter_table("batch_locks") as batch:
        batch.drop_column("generation")
