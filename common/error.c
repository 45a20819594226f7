/* SPDX-License-Identifier: Apache-2.0 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ca_error_set(struct ca_error *err, int code, const char *fmt, ...)
{
        if (!err)
                return code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = code;
        return code;
}

int ca_error_prefix(struct ca_error *err, const char *fmt, ...)
{
        if (!err)
                return -EINVAL;
        char prefix[CA_ERROR_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        char old[CA_ERROR_MAX];
        memcpy(old, err->msg, sizeof(old));
        snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
        return err->code;
}

void ca_error_clear(struct ca_error *err)
{
        if (!err)
                return;
        err->code = 0;
        err->msg[0] = '\0';
}
