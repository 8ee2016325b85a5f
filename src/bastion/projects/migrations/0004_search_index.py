"""The project search index, kept up to date by triggers (no application hook needed).

One row per project: its display name and the summary of its most recently uploaded release.
- SQLite: an FTS5 virtual table ``projects_search`` (rowid = project id).
- PostgreSQL: a table ``projects_search`` with a generated ``tsvector`` column and a GIN index
  (built-in full-text search: no extension, so no CREATE EXTENSION right is needed).
- Other databases: nothing; ``bastion.projects.search`` falls back to a name lookup.

Django's model state is unchanged: the table is outside the ORM and read with SQL by
``bastion.projects.search`` only. The DDL is frozen here, as a migration should be.
"""

from django.db import migrations

# The summary of a project's newest release by upload time (ties: the later row).
_LATEST_SUMMARY = (
    "COALESCE((SELECT r.summary FROM projects_release r WHERE r.project_id = {project} "
    "ORDER BY r.created DESC, r.id DESC LIMIT 1), '')"
)

SQLITE_FORWARD = [
    "CREATE VIRTUAL TABLE projects_search USING fts5("
    "name, summary, tokenize = 'unicode61 remove_diacritics 2')",
    "INSERT INTO projects_search (rowid, name, summary) "
    f"SELECT p.id, p.name, {_LATEST_SUMMARY.format(project='p.id')} FROM projects_project p",
    "CREATE TRIGGER projects_search_project_insert AFTER INSERT ON projects_project BEGIN "
    "DELETE FROM projects_search WHERE rowid = new.id; "
    "INSERT INTO projects_search (rowid, name, summary) VALUES (new.id, new.name, ''); END",
    "CREATE TRIGGER projects_search_project_rename AFTER UPDATE OF name ON projects_project BEGIN "
    "UPDATE projects_search SET name = new.name WHERE rowid = new.id; END",
    "CREATE TRIGGER projects_search_project_delete AFTER DELETE ON projects_project BEGIN "
    "DELETE FROM projects_search WHERE rowid = old.id; END",
    "CREATE TRIGGER projects_search_release_insert AFTER INSERT ON projects_release BEGIN "
    f"UPDATE projects_search SET summary = {_LATEST_SUMMARY.format(project='new.project_id')} "
    "WHERE rowid = new.project_id; END",
    "CREATE TRIGGER projects_search_release_update "
    "AFTER UPDATE OF summary, created ON projects_release BEGIN "
    f"UPDATE projects_search SET summary = {_LATEST_SUMMARY.format(project='new.project_id')} "
    "WHERE rowid = new.project_id; END",
    "CREATE TRIGGER projects_search_release_delete AFTER DELETE ON projects_release BEGIN "
    f"UPDATE projects_search SET summary = {_LATEST_SUMMARY.format(project='old.project_id')} "
    "WHERE rowid = old.project_id; END",
]

SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS projects_search_release_delete",
    "DROP TRIGGER IF EXISTS projects_search_release_update",
    "DROP TRIGGER IF EXISTS projects_search_release_insert",
    "DROP TRIGGER IF EXISTS projects_search_project_delete",
    "DROP TRIGGER IF EXISTS projects_search_project_rename",
    "DROP TRIGGER IF EXISTS projects_search_project_insert",
    "DROP TABLE IF EXISTS projects_search",
]

# Names and summaries are split on anything that is not a letter or digit before the text
# parser sees them (so "zope.interface" is two words, not a host name); 'simple' = no stemming.
_PG_WORDS = "to_tsvector('simple', regexp_replace({column}, '[^[:alnum:]]+', ' ', 'g'))"

POSTGRESQL_FORWARD = [
    "CREATE TABLE projects_search ("
    " project_id bigint PRIMARY KEY,"
    " name text NOT NULL,"
    " summary text NOT NULL DEFAULT '',"
    " document tsvector GENERATED ALWAYS AS ("
    f"  setweight({_PG_WORDS.format(column='name')}, 'A') ||"
    f"  setweight({_PG_WORDS.format(column='summary')}, 'B')) STORED)",
    "CREATE INDEX projects_search_document ON projects_search USING gin (document)",
    "INSERT INTO projects_search (project_id, name, summary) "
    f"SELECT p.id, p.name, {_LATEST_SUMMARY.format(project='p.id')} FROM projects_project p",
    # Projects: insert (upsert: a reused id after a TRUNCATE never collides), rename, delete.
    "CREATE FUNCTION projects_search_project() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " IF TG_OP = 'DELETE' THEN DELETE FROM projects_search WHERE project_id = OLD.id;"
    " RETURN OLD; END IF;"
    " INSERT INTO projects_search (project_id, name, summary) VALUES (NEW.id, NEW.name, '')"
    " ON CONFLICT (project_id) DO UPDATE SET name = EXCLUDED.name;"
    " RETURN NEW; END $$",
    "CREATE TRIGGER projects_search_project AFTER INSERT OR DELETE OR UPDATE OF name"
    " ON projects_project FOR EACH ROW EXECUTE FUNCTION projects_search_project()",
    # Releases: the project's summary is its newest release's.
    "CREATE FUNCTION projects_search_release() RETURNS trigger LANGUAGE plpgsql AS $$"
    " DECLARE target bigint; BEGIN"
    " IF TG_OP = 'DELETE' THEN target := OLD.project_id; ELSE target := NEW.project_id; END IF;"
    f" UPDATE projects_search SET summary = {_LATEST_SUMMARY.format(project='target')}"
    " WHERE project_id = target;"
    " RETURN NULL; END $$",
    "CREATE TRIGGER projects_search_release AFTER INSERT OR DELETE OR UPDATE OF summary, created"
    " ON projects_release FOR EACH ROW EXECUTE FUNCTION projects_search_release()",
    # TRUNCATE (Django's flush between tests) fires no row trigger: empty the index with it.
    "CREATE FUNCTION projects_search_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " TRUNCATE projects_search; RETURN NULL; END $$",
    "CREATE TRIGGER projects_search_truncate AFTER TRUNCATE ON projects_project"
    " FOR EACH STATEMENT EXECUTE FUNCTION projects_search_truncate()",
]

POSTGRESQL_BACKWARD = [
    "DROP TRIGGER IF EXISTS projects_search_truncate ON projects_project",
    "DROP TRIGGER IF EXISTS projects_search_release ON projects_release",
    "DROP TRIGGER IF EXISTS projects_search_project ON projects_project",
    "DROP FUNCTION IF EXISTS projects_search_truncate()",
    "DROP FUNCTION IF EXISTS projects_search_release()",
    "DROP FUNCTION IF EXISTS projects_search_project()",
    "DROP TABLE IF EXISTS projects_search",
]

STATEMENTS = {
    "sqlite": (SQLITE_FORWARD, SQLITE_BACKWARD),
    "postgresql": (POSTGRESQL_FORWARD, POSTGRESQL_BACKWARD),
}


def _run(schema_editor, forward: bool) -> None:
    statements = STATEMENTS.get(schema_editor.connection.vendor)
    if statements is None:
        return
    for statement in statements[0 if forward else 1]:
        schema_editor.execute(statement, params=None)


def create_index(apps, schema_editor):
    _run(schema_editor, forward=True)


def drop_index(apps, schema_editor):
    _run(schema_editor, forward=False)


class Migration(migrations.Migration):
    dependencies = [("projects", "0003_project_confusable_key")]

    operations = [migrations.RunPython(create_index, drop_index)]
