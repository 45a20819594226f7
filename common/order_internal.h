/* SPDX-License-Identifier: Apache-2.0 */
/* order_internal: helpers shared by order.c, order_key.c, order_json.c and result.c.
 *
 * Not an API for other modules: it exists so that every parser of server bodies writes
 * operator messages the same printable way (they all load JSON through order_json_load,
 * order.h). No shared state. */
#ifndef CA_ORDER_INTERNAL_H
#define CA_ORDER_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"
#include "order.h"

/* How many characters of a server-supplied text are quoted in a message. */
#define CA_QUOTE_MAX 64

/* True when body[0..len) is empty or JSON whitespace only. */
int order_json_blank(const char *body, size_t len);

/* "an object", "an array", "a string", "an integer", "a real number", "a boolean",
 * "null": for "expected X, got Y" messages. */
const char *order_json_kind(const json_t *v);

/* Writes src (n bytes) into dst (size bytes, always NUL-terminated) as printable ASCII:
 * '"' and '\\' are backslash-escaped, bytes outside 0x20..0x7e become \xNN, and at most
 * CA_QUOTE_MAX source bytes are shown, with "..." when cut. */
void order_text_quote(char *dst, size_t size, const char *src, size_t n);

/* Size of a buffer that always holds order_text_quote's output. */
#define CA_QUOTE_BUF (CA_QUOTE_MAX * 4 + 4)

#endif
