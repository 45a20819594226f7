/* SPDX-License-Identifier: Apache-2.0 */
/* order: the provisioning order and its result, and their JSON (protocol.md §3, §4).
 *
 * Owns struct ca_order (order_free) and struct ca_result (result_free). Parsing never
 * trusts the server: every field is type-checked, unknown fields are kept in the JSON
 * and ignored, and a page with one bad order still yields the good ones plus, for the
 * bad one, enough to answer it as Errored when it can be identified at all. The order
 * key is Id when present, else the hex SHA-256 of AssignedResourceTypeId, ChangeType,
 * WorkflowInstanceId and the canonical JSON of Changes. Thread-safe: no shared state. */
#ifndef CA_ORDER_H
#define CA_ORDER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "error.h"

#define CA_ORDER_KEY_MAX 256 /* longest Id accepted; a SHA-256 key is 64 hex chars */

enum ca_change_type {
        CA_CHANGE_UNKNOWN = 0,
        CA_CHANGE_ADDED = 1,
        CA_CHANGE_MODIFIED = 2,
        CA_CHANGE_DELETED = 3,
};

struct ca_order {
        char key[CA_ORDER_KEY_MAX + 1]; /* identity (see above) */
        char *id;                       /* Id, NULL when the server sent none */
        char *assignment_id;            /* AssignedResourceTypeId; "" only when invalid */
        enum ca_change_type change; /* CA_CHANGE_UNKNOWN when ChangeType is not one of the three */
        char *change_text; /* ChangeType as sent (for the result and messages); never NULL */
        char *workflow_instance_id; /* NULL when absent */
        char *owner_id;             /* Owner.Id, NULL when absent */
        char *owner_type;           /* ResourceType.SourceEntityType.Id, NULL when absent */
        char *resource_type;        /* ResourceType.Identifier, NULL when absent */
        json_t *json;               /* the whole order object, owned (one reference) */
        json_t *changes;            /* borrowed from json: object or NULL */
        json_t *resource;           /* borrowed from json: object or NULL */
        json_t *arguments;          /* borrowed from json: object or NULL */
        char *invalid;              /* NULL when valid; else why it must be answered Errored */
        char *json_text;            /* compact JSON of json, made on first order_json_text() */
        /* What the guardrails count it as (a bit per guard.h's enum guard_kind), set at
         * intake and kept by the journal so that a restart rebuilds the windows. */
        unsigned guard_kinds;
};

/* One page of ProvisioningData. orders[i] are owned by the page. */
struct ca_order_page {
        struct ca_order **orders;
        size_t count;
        char *continuation_token; /* NULL or "" when no more pages */
        size_t skipped;           /* entries that could not even be identified */
};

/* Deepest nesting of arrays and objects accepted in a server body. A page is three
 * levels deep (page, list, order) plus a few inside an order; jansson's own limit (2048)
 * lets a hostile body spend far more stack and time than any real page needs. */
#define CA_JSON_MAX_DEPTH 64

/* The one way any answer of the server is loaded (pages, acknowledgements, tokens,
 * heartbeats): len bytes of untrusted JSON (any value at the top, so that callers can
 * name the type they got instead of a parse error), nesting checked first (cheaply,
 * without building anything), then parsed with duplicate keys rejected. what names the
 * body in messages. Returns 0 with *out owned by the caller, -EBADMSG with err filled
 * (an empty body too), or -ENOMEM. */
int order_json_load(const char *body, size_t len, const char *what, json_t **out,
                    struct ca_error *err);

/* Parses a ProvisioningData body (len bytes, not necessarily NUL-terminated). An empty
 * body means an empty page. Returns -EBADMSG with err filled when the body is not a
 * page at all (invalid JSON, wrong top-level types); entries that are bad one by one
 * become orders with ->invalid set, or are counted in skipped. */
int order_page_parse(const char *body, size_t len, struct ca_order_page *page,
                     struct ca_error *err);
void order_page_clear(struct ca_order_page *page);

/* Builds an order from one JSON object (borrowed; a reference is taken). Used by the
 * page parser and by the journal to rebuild a stored order. */
int order_from_json(json_t *obj, struct ca_order **out, struct ca_error *err);
void order_free(struct ca_order *order);

/* The whole order as compact JSON text (for programs and files), made once and owned by
 * the order: valid until order_drop_json_text or order_free. An order is used by one
 * thread at a time (the executor's rule), which is what makes the lazy cache safe. NULL
 * on allocation failure. */
const char *order_json_text(struct ca_order *order);
/* In text (len bytes, one JSON object as order_json_text gives it), the value of the
 * top-level member key: 1 with [*start, *end) its bytes, 0 when no member is written as
 * key (one whose name has escapes is not found: callers then read the tree). */
int order_text_member(const char *text, size_t len, const char *key, size_t *start, size_t *end);
/* Frees that text; order_json_text makes it again when asked. An order that waits with
 * thousands of others for a worker need not keep it once the journal has it. */
void order_drop_json_text(struct ca_order *order);

/* The key of an order without an Id (hex SHA-256, 64 chars + NUL). Exactly:
 *
 *   lower-case hex of SHA-256( A || 0x00 || C || 0x00 || W || 0x00 || J )
 *
 * where A is AssignedResourceTypeId, C is ChangeType as sent, W is WorkflowInstanceId
 * ("" when absent; a NULL argument counts as ""), and J is the canonical JSON of Changes:
 * json_dumps(changes, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY), i.e. keys sorted,
 * no spaces, UTF-8 as is, or the four bytes "null" when changes is NULL (absent or
 * null). The NUL separators keep fields from running into each other ("1"+"2" vs "12").
 * This is a stored identity: never change it. Returns 0, -ENOMEM or -EIO. */
int order_compute_key(const char *assignment_id, const char *change_type,
                      const char *workflow_instance_id, json_t *changes, char out[65]);

const char *change_type_name(enum ca_change_type t); /* "Added" ... or "Unknown" */

enum ca_result_state {
        CA_RESULT_EXECUTED = 1,
        CA_RESULT_ERRORED = 2,
};

/* Longest Message (and ResourceIdentifier) sent, in bytes; longer text is cut at a
 * character boundary and ends with "...". */
#define CA_RESULT_MESSAGE_MAX 2048

/* One ProvisioningResults entry. All strings owned. */
struct ca_result {
        char *order_key;
        char *id; /* echoed Id, NULL when the order had none */
        char *assignment_id;
        enum ca_result_state state;
        char *message;     /* "" when none */
        char *change_type; /* as the order said it */
        char *owner_id;
        char *owner_type;
        char *resource_identifier; /* NULL when none */
        int64_t executed_at;       /* Unix seconds */
};

/* A result for order with the given outcome; message and resource_identifier may be
 * NULL. Both are copied as valid UTF-8 (each invalid byte becomes U+FFFD) and capped at
 * CA_RESULT_MESSAGE_MAX bytes. Returns NULL only on allocation failure. */
struct ca_result *result_new(const struct ca_order *order, enum ca_result_state state,
                             const char *message, const char *resource_identifier,
                             int64_t executed_at);
void result_free(struct ca_result *r);
const char *result_state_name(enum ca_result_state s); /* "Executed" / "Errored" */

/* The PUT ProvisioningResults body; malloc'd string, caller frees. */
char *results_body(const char *connector_id, const char *agent_identifier,
                   struct ca_result *const *results, size_t count);

/* Parses the ProvisioningResultsReceivedResult answer {"Received": n, "Duplicates": m}. */
int results_ack_parse(const char *body, size_t len, long *received, long *duplicates,
                      struct ca_error *err);

#endif
