"""Every change to a branch's rules bumps its rules_version, whoever makes it (issue 17).

Each process remembers the branch rules it booked by and re-reads them only when the
insert finds ``rules_version`` moved (app/services/rules.py RulesCache). The staff API
bumps it (0006); these triggers bump it too for a change made any other way (psql, a
script), so that no process keeps booking by rules that are gone:

- any change to a ``branches`` row other than to ``rules_version`` itself (hours, zone,
  name, policy columns) bumps the version in the same row;
- any insert, update or delete in ``branch_closures`` bumps the branch's (both
  branches' when a closure moves).

Changes through the API now bump twice (the API under the seats' booking locks, as
0006 describes, then the trigger in the same transaction): a version only has to move.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION dlsms_branch_rules_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.rules_version = OLD.rules_version
               AND (to_jsonb(NEW) - 'rules_version') IS DISTINCT FROM
                   (to_jsonb(OLD) - 'rules_version') THEN
                NEW.rules_version := OLD.rules_version + 1;
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER branches_rules_version BEFORE UPDATE ON branches
        FOR EACH ROW EXECUTE FUNCTION dlsms_branch_rules_changed()
        """
    )
    op.execute(
        """
        CREATE FUNCTION dlsms_closure_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                UPDATE branches SET rules_version = rules_version + 1 WHERE id = OLD.branch_id;
            END IF;
            IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.branch_id <> OLD.branch_id) THEN
                UPDATE branches SET rules_version = rules_version + 1 WHERE id = NEW.branch_id;
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER branch_closures_rules_version
        AFTER INSERT OR UPDATE OR DELETE ON branch_closures
        FOR EACH ROW EXECUTE FUNCTION dlsms_closure_changed()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS branch_closures_rules_version ON branch_closures")
    op.execute("DROP FUNCTION IF EXISTS dlsms_closure_changed()")
    op.execute("DROP TRIGGER IF EXISTS branches_rules_version ON branches")
    op.execute("DROP FUNCTION IF EXISTS dlsms_branch_rules_changed()")
