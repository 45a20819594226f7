/* SPDX-License-Identifier: Apache-2.0 */
/* sql_cache: one connection's prepared statements, found by their text.
 *
 * The order->SQL logic builds the same few statement texts again and again (one shape per
 * mapping and change type), so a driver keeps what it prepared and runs it again with new
 * parameters instead of preparing each use. The cache is a small fixed table with least
 * recently used eviction: a mapping whose orders name many different column subsets costs
 * an eviction, never unbounded memory. It knows nothing of the database: the driver keeps
 * its handle in stmt and says how to let one go (drop). One cache belongs to one
 * connection, so to one thread. */
#ifndef CA_SQL_CACHE_H
#define CA_SQL_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define SQL_CACHE_SIZE 32

struct sql_cache_entry {
        char *sql;     /* NULL: a free slot */
        uint64_t hash; /* of sql, to skip most string compares */
        uint64_t used; /* the cache's clock at the last use */
        unsigned id;   /* unique for the cache's life (PostgreSQL names statements by it) */
        void *stmt;    /* the driver's handle */
};

struct sql_cache {
        struct sql_cache_entry e[SQL_CACHE_SIZE];
        uint64_t clock;
        unsigned next_id;
        /* Lets one prepared statement go (finalize, DEALLOCATE); called on eviction and by
         * sql_cache_clear when asked to. */
        void (*drop)(void *ctx, struct sql_cache_entry *e);
        void *ctx;
};

/* The entry prepared for this exact text, marked used; NULL when there is none. */
struct sql_cache_entry *sql_cache_find(struct sql_cache *c, const char *sql);
/* A slot for a statement about to be prepared, holding a copy of sql, a new id and no stmt
 * yet (the least recently used entry is dropped when the table is full). NULL when out of
 * memory: the caller runs the statement unprepared. */
struct sql_cache_entry *sql_cache_add(struct sql_cache *c, const char *sql);
/* Frees the slot without drop (its statement failed to prepare, or is gone already). */
void sql_cache_forget(struct sql_cache_entry *e);
/* Empties the cache; drop is called for each entry when drop_each (a live session), not
 * when the statements went with the session (a reconnect). */
void sql_cache_clear(struct sql_cache *c, int drop_each);

/* What a connection learnt about key columns (sql_driver's key_unique), asked once. */
#define SQL_KEY_MEMO      8
#define SQL_KEY_IDENT_MAX 64 /* SQL_IDENT_MAX and its NUL */

struct sql_key_memo {
        struct {
                char table[SQL_KEY_IDENT_MAX], column[SQL_KEY_IDENT_MAX];
                int unique;
        } k[SQL_KEY_MEMO];
        size_t n;
};

/* 1 or 0 as kept, -1 when not known yet. */
int sql_key_memo_get(const struct sql_key_memo *m, const char *table, const char *column);
/* Keeps an answer (none when the memo is full: it is asked again, never wrong). */
void sql_key_memo_set(struct sql_key_memo *m, const char *table, const char *column, int unique);

#endif
