"""Schema changes that Django's migrations would make by rebuilding a table on SQLite."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def drop_column_indexes(app_label: str, model_name: str, *fields: str) -> migrations.RunPython:
    """The database side of removing ``db_index=True`` from ``fields`` (the migration's state
    side is the usual ``AlterField``, in a ``SeparateDatabaseAndState``).

    ``AlterField`` alone does that on SQLite by copying the whole table into a new one, once per
    field: on a large audit trail, minutes with the database locked. This drops the indexes
    themselves: each single-column index of the field that enforces nothing, whatever its name
    (so PostgreSQL's ``..._like`` twin too). Reversed, it creates the index again."""

    def forward(apps: Any, schema_editor: Any) -> None:
        model = apps.get_model(app_label, model_name)
        with schema_editor.connection.cursor() as cursor:
            found = schema_editor.connection.introspection.get_constraints(
                cursor, model._meta.db_table
            )
        for field in fields:
            column = model._meta.get_field(field).column
            for name, info in sorted(found.items()):
                plain = info["index"] and not info["unique"] and not info["primary_key"]
                if plain and info["columns"] == [column]:
                    schema_editor.execute(schema_editor._delete_index_sql(model, name))

    def backward(apps: Any, schema_editor: Any) -> None:
        model = apps.get_model(app_label, model_name)
        for field in fields:
            schema_editor.execute(
                schema_editor._create_index_sql(model, fields=[model._meta.get_field(field)])
            )

    return migrations.RunPython(forward, backward)
