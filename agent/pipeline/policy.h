/* SPDX-License-Identifier: Apache-2.0 */
/* policy: the guardrails step between intake's mapping check and the dispatch: the last
 * line of defence the people who own the targets configure locally, where the server
 * cannot change it.
 *
 * Owns one connector's rules (guard.h), its sliding windows, its counts by rule and its
 * hold index: the orders held in the journal (key and assignment, in their order), so
 * that a later order of a held assignment is held behind them and the assignment's
 * order is kept. Computes what an order touches from the order and its mapping, as the
 * back-end would (ldap: the entry's DN, the groups it joins or leaves, where it moves;
 * sql: the table, the membership table and the key), so that no plug-in has to be asked.
 * No loop and no clock (callers pass the time, in ms); the journal is read only by
 * policy_recover, from the journal its caller names. Loop thread only. */
#ifndef CA_POLICY_H
#define CA_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "guard.h"
#include "order.h"

struct journal;

enum policy_verdict {
        POLICY_ADMIT = 0,
        POLICY_REFUSE = 1, /* answered Errored, nothing of it applied */
        POLICY_HOLD = 2,   /* kept in the journal until an operator releases or refuses it */
};

struct policy_decision {
        enum policy_verdict verdict;
        enum guard_rule rule; /* what refused or held it */
        int behind;           /* held because an earlier order of its assignment is held */
        char why[1536];       /* the rule, its value and what the order does */
        char target[768];     /* the object, for the audit line ("-" when none) */
        unsigned kinds;       /* what the order counts as (bit per enum guard_kind) */
};

struct policy;

/* Rules from cfg (valid: check_config refuses bad ones before). */
int policy_new(const struct ca_config_connector *cfg, struct policy **out, struct ca_error *err);
void policy_free(struct policy *p); /* accepts NULL */
/* A reload: the new rules, the windows kept (resized to the new rates). Writes what
 * loosened into loosened and returns how many (0: none), or a negative errno with err
 * (the old rules stay). */
int policy_reload(struct policy *p, const struct ca_config_connector *cfg, char *loosened,
                  size_t len, struct ca_error *err);
const struct guard_rules *policy_rules(const struct policy *p);

/* Judges a new order of mapping rt at now_ms: refused by a protect or allow rule; held
 * behind an earlier held order of its assignment, or past a rate; else admitted (and
 * counted in its windows). d is filled in every case. */
enum policy_verdict policy_judge(struct policy *p, const struct ca_order *o,
                                 const struct ca_config_resource_type *rt, int64_t now_ms,
                                 struct policy_decision *d);
/* What o touches, as text for messages ("-" when nothing the rules read). */
void policy_target_text(const struct policy *p, const struct ca_order *o,
                        const struct ca_config_resource_type *rt, char *out, size_t len);
/* An operator released o: it runs past the limit, and counts in the windows. */
void policy_note_released(struct policy *p, const struct ca_order *o,
                          const struct ca_config_resource_type *rt, int64_t now_ms);

/* Rebuilds the windows at a start from what the journal says was taken (journal_recent_
 * taken): an order counted as kinds (its guard_kinds, as policy_judge set them; 0 for an
 * entry from before they were kept: then its change_type alone tells) received at
 * received_s (wall clock), seen at now_s (wall) and now_ms (the windows' clock). */
void policy_seed(struct policy *p, const char *change_type, unsigned kinds, int64_t received_s,
                 int64_t now_s, int64_t now_ms);
/* Rebuilds the windows (policy_seed) and the hold index from connector's journal
 * entries, from empty: what the policy held before is forgotten, so a recovery that runs
 * again (after one that failed half-way, or a role taken back) counts nothing twice.
 * *nheld: the held orders found. 0, or the journal's error. */
int policy_recover(struct policy *p, struct journal *j, const char *connector, int64_t now_s,
                   int64_t now_ms, size_t *nheld, struct ca_error *err);
/* The longest window of the rules, in ms (0: no limit). */
uint64_t policy_longest_window(const struct policy *p);

/* The hold index. add: -ENOMEM or 0. */
int policy_hold_add(struct policy *p, const char *key, const char *assignment,
                    enum guard_rule rule);
/* Removes key; 1 when it was there. */
int policy_hold_remove(struct policy *p, const char *key);
size_t policy_held(const struct policy *p);
/* The i-th held order (oldest first), NULL past the end. */
const char *policy_held_key(const struct policy *p, size_t i);
const char *policy_held_assignment(const struct policy *p, size_t i);
/* Whether an order of assignment is held before index i (i = policy_held: any). */
int policy_assignment_held(const struct policy *p, const char *assignment, size_t before);
/* The rule the oldest held order waits for (GUARD_RULES when none is held). */
enum guard_rule policy_held_rule(const struct policy *p);

/* Counts by rule since start (metrics). */
unsigned long policy_refused_by(const struct policy *p, enum guard_rule r);
unsigned long policy_holds_by(const struct policy *p, enum guard_rule r);

#endif
