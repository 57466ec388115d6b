/*
 * store schema: the versioned migration list shared by both backends (one
 * SQL string per dialect, applied once each, recorded in schema_version) and
 * the list query builder, which pastes only constant fragments and leaves
 * every value to a numbered parameter.
 */
#include <stdio.h>
#include <string.h>

#include "store/store_int.h"

/*
 * Append-only: never edit a released migration, add a new version instead,
 * because databases in the field record which versions they already ran.
 */
static const struct store_migration migrations[] = {
    {1,
     "CREATE TABLE records ("
     " kind INTEGER NOT NULL, id TEXT NOT NULL, owner TEXT, lookup TEXT, status TEXT,"
     " created INTEGER NOT NULL, expires INTEGER NOT NULL DEFAULT 0,"
     " version INTEGER NOT NULL, data TEXT, PRIMARY KEY (kind, id));"
     "CREATE INDEX records_owner ON records (kind, owner, created);"
     "CREATE INDEX records_lookup ON records (kind, lookup, created);"
     "CREATE INDEX records_status ON records (kind, status);",
     "CREATE TABLE records ("
     " kind INTEGER NOT NULL, id TEXT NOT NULL, owner TEXT, lookup TEXT, status TEXT,"
     " created BIGINT NOT NULL, expires BIGINT NOT NULL DEFAULT 0,"
     " version BIGINT NOT NULL, data TEXT, PRIMARY KEY (kind, id));"
     "CREATE INDEX records_owner ON records (kind, owner, created);"
     "CREATE INDEX records_lookup ON records (kind, lookup, created);"
     "CREATE INDEX records_status ON records (kind, status);"},
    /* Listing a whole kind by age and sweeping expired rows need their own index. */
    {2,
     "CREATE INDEX records_created ON records (kind, created);"
     "CREATE INDEX records_expires ON records (kind, expires);",
     "CREATE INDEX records_created ON records (kind, created);"
     "CREATE INDEX records_expires ON records (kind, expires);"},
    /*
     * Every record write touched the table and five indexes. No query filters
     * or orders by expires, and only the EAB list (a handful of rows) reads a
     * whole kind by age, so those two go. The rest index only rows that have
     * the column (orders carry no lookup, audit records no owner): a query for
     * "col = ?" never matches NULL, so both planners still pick them.
     */
    {3,
     "DROP INDEX IF EXISTS records_created;"
     "DROP INDEX IF EXISTS records_expires;"
     "DROP INDEX IF EXISTS records_owner;"
     "DROP INDEX IF EXISTS records_lookup;"
     "DROP INDEX IF EXISTS records_status;"
     "CREATE INDEX records_owner ON records (kind, owner, created) WHERE owner IS NOT NULL;"
     "CREATE INDEX records_lookup ON records (kind, lookup, created) WHERE lookup IS NOT NULL;"
     "CREATE INDEX records_status ON records (kind, status) WHERE status IS NOT NULL;",
     "DROP INDEX IF EXISTS records_created;"
     "DROP INDEX IF EXISTS records_expires;"
     "DROP INDEX IF EXISTS records_owner;"
     "DROP INDEX IF EXISTS records_lookup;"
     "DROP INDEX IF EXISTS records_status;"
     "CREATE INDEX records_owner ON records (kind, owner, created) WHERE owner IS NOT NULL;"
     "CREATE INDEX records_lookup ON records (kind, lookup, created) WHERE lookup IS NOT NULL;"
     "CREATE INDEX records_status ON records (kind, status) WHERE status IS NOT NULL;"},
};

const struct store_migration *store_schema_migrations(size_t *n)
{
    *n = nitems(migrations);
    return migrations;
}

int store_list_sql(const struct store_filter *f, bool pg, char *out, size_t outlen)
{
    static const char *const cols[] = {"owner", "lookup", "status"};
    const char *vals[] = {f->owner, f->lookup, f->status};
    /* SQLite's "$N" is a named parameter numbered by first use; "?N" is positional. */
    const char *mark = pg ? "$" : "?";
    struct buf b = {0};
    int np = 1;

    buf_printf(&b, "SELECT " STORE_COLUMNS " FROM records WHERE kind = %s1", mark);
    for (size_t i = 0; i < nitems(cols); i++) {
        if (vals[i] != NULL)
            buf_printf(&b, " AND %s = %s%d", cols[i], mark, ++np);
    }
    if (f->created_since != 0)
        buf_printf(&b, " AND created >= %s%d", mark, ++np);
    if (f->after_id != NULL) {
        /* The bare bound on created lets both planners range-scan the (…, created) indexes. */
        const char *op = f->newest_first ? "<" : ">";
        np += 2;
        buf_printf(&b, " AND created %s= %s%d AND (created %s %s%d OR id %s %s%d)", op, mark,
                   np - 1, op, mark, np - 1, op, mark, np);
    }
    buf_puts(&b,
             f->newest_first ? " ORDER BY created DESC, id DESC" : " ORDER BY created ASC, id ASC");
    buf_printf(&b, " LIMIT %s%d%s", mark, ++np, pg ? "::bigint" : "");
    /* Only constant fragments go in, so the longest form is known; a short out is a bug. */
    if (b.len >= outlen)
        np = -1;
    else
        memcpy(out, b.p, b.len + 1);
    buf_free(&b);
    return np;
}
