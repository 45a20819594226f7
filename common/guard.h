/* SPDX-License-Identifier: Apache-2.0 */
/* guard: one connector's guardrail rules, parsed from its [connector] keys, and the pure
 * checks made on them: which objects no order may touch (protect, protect_subtree,
 * protect_table, protect_key), the only places orders may write to (allow_subtree,
 * allow_table), and how many orders of a kind may run per sliding window (max_added ...
 * max_group_changes).
 *
 * Owns struct guard_rules (guard_rules_free) and struct guard_window. Knows nothing of
 * the loop, the journal or the clock: the caller passes the time, so that the windows
 * are tested on a virtual clock. Rules are read-only once parsed and may be shared
 * between threads; a window belongs to its caller's thread.
 *
 * DNs are compared as RFC 4514 DNs, not as text: attribute types and values without
 * regard to ASCII case, spaces around ',', '=' and '+' ignored, escapes (\, and \2C)
 * decoded. A '*' in a protect or protect_table/protect_key item matches any run of
 * characters (commas included: a pattern errs towards protecting more). */
#ifndef CA_GUARD_H
#define CA_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define GUARD_RATE_MAX   100000 /* largest COUNT of a rate (a window keeps one stamp each) */
#define GUARD_WINDOW_MAX (30ULL * 24 * 3600 * 1000) /* longest window: 30 days */
#define GUARD_ITEMS_MAX  256                        /* items of one list */
#define GUARD_TEXT_MAX   1024                       /* longest DN, table or pattern */

/* What an order does, for the rate limits: one order may be of several kinds (a
 * Modified that disables an account and removes it from a group). */
enum guard_kind {
        GUARD_ADDED = 0,
        GUARD_MODIFIED = 1,
        GUARD_DELETED = 2,
        GUARD_DISABLED = 3,
        GUARD_GROUP = 4,
        GUARD_KINDS = 5,
};

/* Every rule, in the order the metrics and doctor list them. */
enum guard_rule {
        GUARD_RULE_PROTECT = 0,
        GUARD_RULE_PROTECT_SUBTREE,
        GUARD_RULE_ALLOW_SUBTREE,
        GUARD_RULE_PROTECT_TABLE,
        GUARD_RULE_ALLOW_TABLE,
        GUARD_RULE_PROTECT_KEY,
        GUARD_RULE_MAX_ADDED, /* GUARD_RULE_MAX_ADDED + kind is kind's rate */
        GUARD_RULE_MAX_MODIFIED,
        GUARD_RULE_MAX_DELETED,
        GUARD_RULE_MAX_DISABLED,
        GUARD_RULE_MAX_GROUP_CHANGES,
        GUARD_RULES = 11,
};

/* The configuration key of a rule: "protect", "max_deleted" ... */
const char *guard_rule_key(enum guard_rule r);

struct guard_item {
        char *text;  /* as written (for messages) */
        char *norm;  /* normalised: a DN's canonical form, or lower-case text */
        char *table; /* protect_key TABLE:PATTERN: the table part (lower case), else NULL */
        int glob;    /* norm holds a '*' */
};

struct guard_list {
        struct guard_item *items;
        size_t count;
};

struct guard_rate {
        uint64_t count; /* 0: no limit */
        uint64_t window_ms;
        char text[64]; /* as written, e.g. "50/1h" */
};

struct guard_rules {
        struct guard_list lists[GUARD_RULE_PROTECT_KEY + 1]; /* by enum guard_rule */
        struct guard_rate rates[GUARD_KINDS];
};

/* Parses cfg's guardrail keys. Returns 0 with *out new (guard_rules_free), or -EINVAL
 * with one problem per line in why ("protect: item 2 (cn=x,,dc=y): not a DN") and *out
 * NULL, or -ENOMEM. A connector without any rule gets empty rules (guard_rules_empty). */
int guard_rules_parse(const struct ca_config_connector *cfg, struct guard_rules **out, char *why,
                      size_t len);
void guard_rules_free(struct guard_rules *r); /* accepts NULL */
int guard_rules_empty(const struct guard_rules *r);
/* One line per rule set (key = value as written), for doctor and the start-up log;
 * calls line(ctx, text) for each. Nothing when there is no rule. */
void guard_rules_describe(const struct guard_rules *r, void (*line)(void *ctx, const char *text),
                          void *ctx);
/* What fresh allows that old did not, as "protect item removed: X, max_deleted 50/1h ->
 * 100/1h, ..." into out (NUL-terminated, truncated); returns how many loosenings. */
size_t guard_rules_loosened(const struct guard_rules *old, const struct guard_rules *fresh,
                            char *out, size_t len);

/* The canonical form of dn into out; -EINVAL when it is not a DN (empty RDN, no '=',
 * a bad escape), -ENAMETOOLONG when out is too small. */
int guard_dn_normalize(const char *dn, char *out, size_t len);
/* "<attr>=<value escaped per RFC 4514>,<base_dn>" into out, as the ldap back-end builds
 * an entry's DN; -EINVAL or -ENAMETOOLONG. */
int guard_dn_compose(const char *attr, const char *value, const char *base_dn, char *out,
                     size_t len);
/* norm (canonical) lies in the subtree of base (canonical): equal, or below it. */
int guard_dn_in_subtree(const char *norm, const char *base);
/* '*' matches any run of characters; everything else itself. */
int guard_glob_match(const char *pattern, const char *text);

/* What an order touches, as the agent computed it from the order and its mapping. */
struct guard_target {
        unsigned kinds;            /* bit (1u << enum guard_kind) */
        const char *dn;            /* the entry (NULL: not a directory order) */
        const char *new_parent;    /* where a Modified moves it (NULL: not moved) */
        const char *const *groups; /* groups it is added to or removed from */
        size_t group_count;
        const char *table;            /* the SQL table (NULL: not an SQL order) */
        const char *key;              /* the SQL key value */
        const char *membership_table; /* written too when it changes memberships */
};

/* Refused by a protect or allow rule: returns the rule and writes into why the rule's
 * item and the object it matched ("protect = CN=Domain Admins,...: the order adds a
 * member to CN=Domain Admins,..."); -1 when no rule refuses it. A DN the agent cannot
 * read is refused too (under allow_subtree, or any protect rule present). */
int guard_refuses(const struct guard_rules *r, const struct guard_target *t, char *why, size_t len);

/* A sliding window of the last count admissions within window_ms. */
struct guard_window {
        int64_t *stamps; /* ring of admission times (ms) */
        size_t cap, head, n;
        uint64_t window_ms;
};

/* Sets the window to rate (cap 0: no limit), keeping the newest stamps that fit. */
int guard_window_set(struct guard_window *w, const struct guard_rate *rate);
void guard_window_clear(struct guard_window *w);
/* Forgets every admission, keeping the rate. */
void guard_window_empty(struct guard_window *w);
/* Admissions still inside the window at now_ms. */
size_t guard_window_count(struct guard_window *w, int64_t now_ms);
/* 1 when one more fits at now_ms (no limit: always); does not record it. */
int guard_window_room(struct guard_window *w, int64_t now_ms);
/* Records one admission at now_ms (an operator's release is recorded even past the
 * limit: the oldest stamp then gives way). */
void guard_window_note(struct guard_window *w, int64_t now_ms);

#endif
