/* SPDX-License-Identifier: Apache-2.0 */
/* ca-plugin-check: loads one plug-in through the agent's loader and prints what it is.
 *
 * Usage: ca-plugin-check PATH/NAME.so. Prints "name=<name> abi=<major>.<minor>
 * description=<text>" and exits 0, or prints the loader's refusal and exits 1. Used by
 * the out-of-tree plug-in test, and handy to check a plug-in before installing it. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_loader.h"

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: %s PATH/NAME.so\n", argv[0]);
                return 2;
        }
        char *a = strdup(argv[1]), *b = strdup(argv[1]);
        if (!a || !b)
                return 1;
        char *dir = dirname(a);
        char *file = basename(b);
        size_t len = strlen(file);
        if (len < 4 || strcmp(file + len - 3, ".so") != 0) {
                fprintf(stderr, "%s: not a .so file\n", argv[1]);
                free(a);
                free(b);
                return 2;
        }
        file[len - 3] = '\0';

        struct backend *be = NULL;
        struct ca_error err = {0};
        int rc = 0;
        if (backend_load(dir, file, &be, &err) < 0) {
                fprintf(stderr, "refused: %s\n", err.msg);
                rc = 1;
        } else {
                const struct ca_backend_ops *ops = backend_ops(be);
                printf("name=%s abi=%u.%u description=%s\n", backend_name(be),
                       CA_BACKEND_ABI_MAJOR_OF(ops->abi_version), ops->abi_version & 0xffffu,
                       ops->description ? ops->description : "");
        }
        backend_unload(be);
        free(a);
        free(b);
        return rc;
}
