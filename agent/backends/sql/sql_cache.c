/* SPDX-License-Identifier: Apache-2.0 */
/* sql_cache: one connection's prepared statements (see sql_cache.h). */
#include "sql_cache.h"

#include <stdlib.h>
#include <string.h>

static uint64_t text_hash(const char *s)
{
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */
        for (; *s; s++) {
                h ^= (unsigned char)*s;
                h *= 1099511628211ULL;
        }
        return h;
}

struct sql_cache_entry *sql_cache_find(struct sql_cache *c, const char *sql)
{
        uint64_t h = text_hash(sql);
        for (size_t i = 0; i < SQL_CACHE_SIZE; i++) {
                struct sql_cache_entry *e = &c->e[i];
                if (e->sql && e->hash == h && strcmp(e->sql, sql) == 0) {
                        e->used = ++c->clock;
                        return e;
                }
        }
        return NULL;
}

struct sql_cache_entry *sql_cache_add(struct sql_cache *c, const char *sql)
{
        struct sql_cache_entry *slot = NULL;
        for (size_t i = 0; i < SQL_CACHE_SIZE && !slot; i++)
                if (!c->e[i].sql)
                        slot = &c->e[i];
        if (!slot) {
                slot = &c->e[0];
                for (size_t i = 1; i < SQL_CACHE_SIZE; i++)
                        if (c->e[i].used < slot->used)
                                slot = &c->e[i];
                if (c->drop)
                        c->drop(c->ctx, slot);
                sql_cache_forget(slot);
        }
        char *copy = strdup(sql);
        if (!copy)
                return NULL;
        slot->sql = copy;
        slot->hash = text_hash(sql);
        slot->used = ++c->clock;
        slot->id = ++c->next_id;
        slot->stmt = NULL;
        return slot;
}

void sql_cache_forget(struct sql_cache_entry *e)
{
        free(e->sql);
        memset(e, 0, sizeof(*e));
}

void sql_cache_clear(struct sql_cache *c, int drop_each)
{
        for (size_t i = 0; i < SQL_CACHE_SIZE; i++) {
                struct sql_cache_entry *e = &c->e[i];
                if (!e->sql)
                        continue;
                if (drop_each && c->drop)
                        c->drop(c->ctx, e);
                sql_cache_forget(e);
        }
}

int sql_key_memo_get(const struct sql_key_memo *m, const char *table, const char *column)
{
        for (size_t i = 0; i < m->n; i++)
                if (strcmp(m->k[i].table, table) == 0 && strcmp(m->k[i].column, column) == 0)
                        return m->k[i].unique;
        return -1;
}

void sql_key_memo_set(struct sql_key_memo *m, const char *table, const char *column, int unique)
{
        if (m->n == SQL_KEY_MEMO || strlen(table) >= SQL_KEY_IDENT_MAX ||
            strlen(column) >= SQL_KEY_IDENT_MAX)
                return;
        strcpy(m->k[m->n].table, table);
        strcpy(m->k[m->n].column, column);
        m->k[m->n].unique = unique;
        m->n++;
}
