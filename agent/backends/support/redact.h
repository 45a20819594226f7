/* SPDX-License-Identifier: Apache-2.0 */
/* redact: an order's JSON as a dry run may show it. The exec and file back-ends pass the
 * order on whole and cannot tell which of its Changes values is a password (their
 * mappings name none), so what --dry-run prints of them keeps the order's structure, its
 * keys and its numbers, booleans and nulls, and shows every string inside Changes as
 * "<hidden>" (protocol.md: a secret value never reaches --dry-run). Thread-safe. */
#ifndef CA_BACKEND_REDACT_H
#define CA_BACKEND_REDACT_H

/* json: one order object. Returns a new string (free), or NULL when json is not an
 * object or memory ran out. */
char *redact_order_json(const char *json);

#define REDACT_HIDDEN "<hidden>"

#endif
