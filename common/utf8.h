/* SPDX-License-Identifier: Apache-2.0 */
/* utf8: text made valid UTF-8 before it goes into JSON (results, the journal, logs).
 *
 * The one place that decides what a valid sequence is (what jansson accepts: no overlong
 * forms, no surrogates, nothing above U+10FFFF) and how a text too long is cut: each byte
 * that does not start a valid sequence becomes U+FFFD, and a cut falls on a character
 * boundary and ends with "...". Targets put their raw diagnostics in messages, in
 * whatever encoding they use. Pure functions, any thread. */
#ifndef CA_UTF8_H
#define CA_UTF8_H

#include <stddef.h>

/* Copies src into dst (size bytes, NUL included) as described above; src and dst must
 * not overlap. Returns the length written. size 0 writes nothing. */
size_t utf8_copy(char *dst, size_t size, const char *src);

/* Whether s (NUL-terminated) is valid UTF-8 as described above. */
int utf8_valid(const char *s);

/* The same into a new string of at most cap bytes (free it); NULL when out of memory. */
char *utf8_dup(const char *src, size_t cap);

#endif
