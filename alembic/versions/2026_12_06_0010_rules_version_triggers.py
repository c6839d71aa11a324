"""A branch's rules_version is a fresh random number at every change, whoever makes it.

Each process remembers the branch rules it booked by and re-reads them only when the
insert finds the (branch id, rules_version) it judged by gone (app/services/rules.py
RulesCache). For that, a version must never come back:

- versions are random 52-bit numbers (``dlsms_new_rules_version()``), not a counter: a
  counter starts again at 0 when the tables are emptied and refilled (the same ids,
  other rules) or a backup is restored, and a process would take the new rules for the
  ones it remembers. New branches get one too (the column's default).
- The staff API draws a new one under the seats' booking locks (0006 describes why).
- Any change to a ``branches`` row other than to ``rules_version`` itself (hours, zone,
  name, policy columns) draws one in the same row, and any insert, update or delete in
  ``branch_closures`` draws one for its branch (both when a closure moves): a change
  made outside the API (psql, a script) reaches the processes too.

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
    # 52 random bits (random() has 52 of precision): a repeat is not to be expected.
    op.execute(
        """
        CREATE FUNCTION dlsms_new_rules_version() RETURNS bigint
        LANGUAGE sql VOLATILE AS 'SELECT floor(random() * 4503599627370496)::bigint'
        """
    )
    op.execute(
        "ALTER TABLE branches ALTER COLUMN rules_version SET DEFAULT dlsms_new_rules_version()"
    )
    op.execute("UPDATE branches SET rules_version = dlsms_new_rules_version()")
    op.execute(
        """
        CREATE FUNCTION dlsms_branch_rules_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.rules_version = OLD.rules_version
               AND (to_jsonb(NEW) - 'rules_version') IS DISTINCT FROM
                   (to_jsonb(OLD) - 'rules_version') THEN
                NEW.rules_version := dlsms_new_rules_version();
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
                UPDATE branches SET rules_version = dlsms_new_rules_version() WHERE id = OLD.branch_id;
            END IF;
            IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.branch_id <> OLD.branch_id) THEN
                UPDATE branches SET rules_version = dlsms_new_rules_version() WHERE id = NEW.branch_id;
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
    op.execute("ALTER TABLE branches ALTER COLUMN rules_version SET DEFAULT 0")
    op.execute("DROP FUNCTION IF EXISTS dlsms_new_rules_version()")
