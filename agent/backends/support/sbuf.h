/* SPDX-License-Identifier: Apache-2.0 */
/* sbuf: a growing text buffer for plug-ins building statements, LDIF and messages.
 *
 * Shared by the project's plug-ins as a static library linked into each (plug-ins use the
 * public header and their own libraries only, never ca_common). A failed allocation is
 * sticky: later appends do nothing and the caller checks `failed` once at the end. The
 * caller owns `p` and frees it. Not thread-safe; one buffer per thread. */
#ifndef CA_BACKEND_SBUF_H
#define CA_BACKEND_SBUF_H

#include <stddef.h>

struct sbuf {
        char *p; /* NUL-terminated once anything was added; NULL before */
        size_t len, cap;
        int failed;
};

void sb_add(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
