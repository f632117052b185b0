"""Database helpers the ORM lacks."""
from django.db import connection


def update_rows(model, objs, fields, *, batch_size=5000):
    """Write `fields` of every object in `objs` to its row: one parameterised UPDATE ... WHERE pk = %s, executed
    for all rows at once (executemany).

    Django's bulk_update builds one CASE WHEN pk=... per field over the whole batch, which the database evaluates
    row by row: quadratic in the batch size (8 fields x 1,500 images took 8 s on SQLite). This stays linear.
    Call it inside a transaction when the rows must change together."""
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    sql = (f"UPDATE {quote(meta.db_table)} SET " + ", ".join(f"{quote(f.column)} = %s" for f in columns)
           + f" WHERE {quote(meta.pk.column)} = %s")
    rows = [[f.get_db_prep_save(getattr(obj, f.attname), connection) for f in columns] + [obj.pk] for obj in objs]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            cursor.executemany(sql, rows[start : start + batch_size])
    return len(rows)
