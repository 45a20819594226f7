/* order_internal: helpers shared by order.c, order_key.c, order_json.c and result.c.
 *
 * Not an API for other modules: it exists so that every parser of server bodies loads
 * JSON the same guarded way and writes operator messages the same printable way. No
 * shared state. */
#ifndef CA_ORDER_INTERNAL_H
#define CA_ORDER_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"

/* Deepest nesting of arrays and objects accepted in a server body. A page is three
 * levels deep (page, list, order) plus a few inside an order; jansson's own limit (2048)
 * lets a hostile body spend far more stack and time than any real page needs. */
#define CA_JSON_MAX_DEPTH 64

/* How many characters of a server-supplied text are quoted in a message. */
#define CA_QUOTE_MAX 64

/* Loads len bytes of untrusted JSON: nesting checked first (cheaply, without building
 * anything), then parsed with duplicate keys rejected. what names the body in messages.
 * Returns 0 with *out owned by the caller, -EBADMSG with err filled, or -ENOMEM. */
int order_json_load(const char *body, size_t len, const char *what, json_t **out,
                    struct ca_error *err);

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
