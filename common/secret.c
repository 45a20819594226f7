/* SPDX-License-Identifier: Apache-2.0 */
/* Secrets read from files: the file must not be readable by others nor writable by
 * anyone but its owner, messages name the file and its mode but never its content, and
 * every buffer that held the content is wiped before it is freed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/* Secrets are short (a client secret, a password); anything larger is a wrong path. */
#define CA_SECRET_MAX (64 * 1024)

int secret_read_file(const char *path, char **out, struct ca_error *err)
{
        int r = 0, fd = -1;
        char *buf = NULL;
        size_t len = 0;
        struct stat st;

        *out = NULL;
        /* open() follows a symlink; fstat() then checks the target that will be read. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = ca_error_set(err, -errno, "%s: cannot open: %s", path, strerror(errno));
                goto out;
        }
        if (fstat(fd, &st) < 0) {
                r = ca_error_set(err, -errno, "%s: cannot stat: %s", path, strerror(errno));
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                r = ca_error_set(err, -EINVAL, "%s: not a regular file", path);
                goto out;
        }
        if (st.st_mode & S_IROTH) {
                r = ca_error_set(err, -EPERM,
                                 "%s: mode %04o lets others read the secret: chmod 0600 (or 0640)",
                                 path, (unsigned)(st.st_mode & 07777));
                goto out;
        }
        if (st.st_mode & (S_IWGRP | S_IWOTH)) {
                r = ca_error_set(
                    err, -EPERM,
                    "%s: mode %04o lets others change the secret: chmod 0600 (or 0640)", path,
                    (unsigned)(st.st_mode & 07777));
                goto out;
        }
        buf = malloc(CA_SECRET_MAX + 1);
        if (!buf) {
                r = ca_error_set(err, -ENOMEM, "%s: out of memory", path);
                goto out;
        }
        /* Read one byte past the cap to tell "exactly the cap" from "too large". */
        while (len <= CA_SECRET_MAX) {
                ssize_t n = read(fd, buf + len, CA_SECRET_MAX + 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = ca_error_set(err, -errno, "%s: cannot read: %s", path, strerror(errno));
                        goto out;
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (len > CA_SECRET_MAX) {
                r = ca_error_set(err, -EFBIG, "%s: larger than %d bytes, not a secret", path,
                                 CA_SECRET_MAX);
                goto out;
        }
        if (memchr(buf, '\0', len)) {
                r = ca_error_set(err, -EINVAL, "%s: contains a NUL byte", path);
                goto out;
        }
        if (len > 0 && buf[len - 1] == '\n') {
                len--;
                if (len > 0 && buf[len - 1] == '\r')
                        len--;
        }
        if (len == 0) {
                r = ca_error_set(err, -EINVAL, "%s: is empty", path);
                goto out;
        }
        /* Hand back an exact-size copy: the read buffer is wiped below like on failure. */
        *out = malloc(len + 1);
        if (!*out) {
                r = ca_error_set(err, -ENOMEM, "%s: out of memory", path);
                goto out;
        }
        memcpy(*out, buf, len);
        (*out)[len] = '\0';
out:
        if (buf) {
                explicit_bzero(buf, CA_SECRET_MAX + 1);
                free(buf);
        }
        if (fd >= 0)
                close(fd);
        return r;
}

/* A credential is one file in $CREDENTIALS_DIRECTORY (systemd's LoadCredential=), so its
 * name is a plain file name that cannot climb out of the directory. */
static bool credential_name_ok(const char *name)
{
        size_t len = strlen(name);
        return len > 0 && len <= NAME_MAX && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
               !strchr(name, '/');
}

int secret_read_credential(const char *dir, const char *name, char **out, struct ca_error *err)
{
        char path[PATH_MAX];
        *out = NULL;
        if (!credential_name_ok(name))
                return ca_error_set(err, -EINVAL,
                                    "must be a credential name (a file name in "
                                    "$CREDENTIALS_DIRECTORY), not a path");
        if (!dir || !*dir)
                return ca_error_set(err, -EINVAL,
                                    "CREDENTIALS_DIRECTORY is not set (does the unit have "
                                    "LoadCredential=%s:...?)",
                                    name);
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
                return ca_error_set(err, -ENAMETOOLONG, "credential path too long");
        return secret_read_file(path, out, err);
}

int secret_read_named(const char *file, const char *credential, const char *dir, char **out,
                      char *which, struct ca_error *err)
{
        *out = NULL;
        if (which)
                *which = file ? 'f' : 'c';
        if (file && credential)
                return ca_error_set(err, -EINVAL, "set only one of the file and the credential");
        if (file)
                return secret_read_file(file, out, err);
        if (credential)
                return secret_read_credential(dir, credential, out, err);
        return -ENOENT;
}

void secret_free(char *secret)
{
        if (!secret)
                return;
        explicit_bzero(secret, strlen(secret));
        free(secret);
}
