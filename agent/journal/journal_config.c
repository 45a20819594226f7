/* SPDX-License-Identifier: Apache-2.0 */
/* The journal that [agent] configures: its driver, where it lives, and the PostgreSQL
 * password read from its file or credential for the time of the connection only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "journal.h"

int journal_open_config(const struct ca_config_agent *a, struct journal **out, struct ca_error *err)
{
        *out = NULL;
        struct journal_params p = {
            .sync = a->journal_sync, .key_dir = a->state_dir, .lease_ms = a->journal_lease_ms};
        if (journal_kind_parse(a->journal, &p.kind) < 0)
                return ca_error_set(err, -EINVAL, "journal = %s: must be sqlite or postgresql",
                                    a->journal);
        char path[4096];
        if (p.kind == JOURNAL_SQLITE) {
                snprintf(path, sizeof(path), "%s/%s", a->state_dir, JOURNAL_FILE);
                p.path = path;
                return journal_open_params(&p, out, err);
        }
        char *password = NULL;
        int code = 0;
        code = secret_read_named(a->journal_password_file, a->journal_password_credential,
                                 getenv("CREDENTIALS_DIRECTORY"), &password, NULL, err);
        if (code == -ENOENT)
                code = 0; /* no password: the connection string's other means (.pgpass, peer) */
        if (code < 0)
                return ca_error_prefix(err, "journal password");
        p.conninfo = a->journal_connection;
        p.password = password;
        code = journal_open_params(&p, out, err);
        secret_free(password);
        return code;
}
