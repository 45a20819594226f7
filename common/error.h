/* SPDX-License-Identifier: Apache-2.0 */
/* error: the one error convention of the code base.
 *
 * Functions return 0 (or a count) on success and a negative errno on failure
 * (-ENOMEM, -EINVAL, -EIO ...), as systemd does. Where an operator needs words (a
 * configuration key, a server answer, a target's diagnostic), the caller also passes a
 * struct ca_error that the failing callee fills; it may be NULL when nobody will read it.
 * Messages never contain secrets: callers format only what is safe to show. */
#ifndef CA_ERROR_H
#define CA_ERROR_H

#include <errno.h>
#include <stddef.h>

#define CA_ERROR_MAX 512

struct ca_error {
        int code;               /* the negative errno last set, 0 when none */
        char msg[CA_ERROR_MAX]; /* NUL-terminated, truncated to fit */
};

/* Fills err (when not NULL) and returns code, so that a failure reads
 * `return ca_error_set(err, -EINVAL, "bad %s", what);`. */
int ca_error_set(struct ca_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an existing message, keeping its code; returns the code. */
int ca_error_prefix(struct ca_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void ca_error_clear(struct ca_error *err);

#endif
