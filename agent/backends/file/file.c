/* SPDX-License-Identifier: Apache-2.0 */
/* file: the back-end that writes each order as one JSON document (backends.md, "file").
 * [connector NAME]: directory (must exist). No mapping settings.
 *
 * The file name comes from the order key, escaped so that it is always one plain name
 * inside the directory (no '/', never "." or "..", never hidden). The write is atomic
 * and durable: a temporary file, fsync, a rename that never replaces, fsync of the
 * directory. The directory is held open, so every call works relative to it. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <connector-agent/backend.h>

#include "redact.h"

#define FILE_NAME_MAX    200 /* escaped names longer than this get a hash tail */
#define FILE_NAME_PREFIX 135 /* what a long name keeps before its hash */
#define FILE_READ_MAX    (64 * 1024 * 1024)
#define FILE_DIR_MAX     3072
#define FILE_MODE        0640

static const struct ca_host *host;
static atomic_uint tmp_counter;

struct file_instance {
        int dirfd;
        char dir[FILE_DIR_MAX];
};

static int file_instance_new(const struct ca_host *h, const struct ca_backend_settings *s,
                             void **instance, struct ca_backend_error *err)
{
        const char *dir = h->setting(s, "directory");
        if (!dir || !*dir)
                return h->error(err, CA_BACKEND_EINVALID, "directory",
                                "directory: required: where the order files go");
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/')
                len--;
        if (len >= FILE_DIR_MAX)
                return h->error(err, CA_BACKEND_EINVALID, "directory", "directory: path too long");
        struct file_instance *inst = calloc(1, sizeof(*inst));
        if (!inst)
                return h->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
        memcpy(inst->dir, dir, len);
        inst->dir[len] = '\0';
        inst->dirfd = open(inst->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (inst->dirfd < 0) {
                int rc = h->error(err, CA_BACKEND_EINVALID, "directory", "directory = %s: %s",
                                  inst->dir, strerror(errno));
                free(inst);
                return rc;
        }
        *instance = inst;
        return CA_BACKEND_OK;
}

static int file_mapping_check(void *instance, const struct ca_backend_settings *mapping,
                              struct ca_backend_error *err)
{
        int rc = CA_BACKEND_OK;
        for (size_t i = 0; i < host->setting_count(mapping); i++) {
                const char *k = host->setting_key(mapping, i);
                if (strcmp(k, "connector") != 0)
                        rc = host->error(err, CA_BACKEND_EINVALID, k,
                                         "%s: the file back-end takes no mapping settings", k);
        }
        return rc;
}

static void file_instance_free(void *instance)
{
        struct file_instance *inst = instance;
        if (!inst)
                return;
        close(inst->dirfd);
        free(inst);
}

static int file_session_open(void *instance, void **session, struct ca_backend_error *err)
{
        *session = instance;
        return CA_BACKEND_OK;
}

static void file_session_close(void *session)
{
}

/* --- names --- */

static int name_char_kept(char c, size_t pos)
{
        if (c == '.')
                return pos > 0; /* a leading dot would make "." , ".." or a hidden file */
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
}

/* The file name of an order key: kept characters as they are, every other byte as %XX
 * (so two keys never share a name), a hash tail when too long; ".json" appended. */
static void safe_name(const char *key, char out[FILE_NAME_MAX + 80])
{
        static const char hex[] = "0123456789ABCDEF";
        char esc[FILE_NAME_MAX + 4];
        size_t o = 0;
        int long_name = 0;
        for (size_t i = 0; key[i]; i++) {
                unsigned char c = (unsigned char)key[i];
                size_t need = name_char_kept((char)c, i) ? 1 : 3;
                if (o + need > FILE_NAME_MAX) {
                        long_name = 1;
                        break;
                }
                if (need == 1) {
                        esc[o++] = (char)c;
                } else {
                        esc[o++] = '%';
                        esc[o++] = hex[c >> 4];
                        esc[o++] = hex[c & 15];
                }
        }
        esc[o] = '\0';
        if (!long_name) {
                snprintf(out, FILE_NAME_MAX + 80, "%s.json", esc);
                return;
        }
        /* Longer than any short name can be, so it never equals one. */
        unsigned char md[SHA256_DIGEST_LENGTH];
        char mdhex[2 * SHA256_DIGEST_LENGTH + 1];
        SHA256((const unsigned char *)key, strlen(key), md);
        for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++) {
                mdhex[2 * i] = hex[md[i] >> 4];
                mdhex[2 * i + 1] = hex[md[i] & 15];
        }
        mdhex[2 * SHA256_DIGEST_LENGTH] = '\0';
        size_t keep = FILE_NAME_PREFIX;
        /* Never cut an escape in half. */
        if (keep >= 1 && esc[keep - 1] == '%')
                keep -= 1;
        else if (keep >= 2 && esc[keep - 2] == '%')
                keep -= 2;
        snprintf(out, FILE_NAME_MAX + 80, "%.*s~%s.json", (int)keep, esc, mdhex);
}

/* --- content --- */

static json_t *order_object(const struct ca_backend_order *order)
{
        const char *text = host->order_json(order);
        json_t *o = text ? json_loads(text, 0, NULL) : NULL;
        if (o && !json_is_object(o)) {
                json_decref(o);
                o = NULL;
        }
        return o;
}

static char *content_new(json_t *order)
{
        char stamp[32];
        struct tm tm;
        time_t now = time(NULL);
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_t *copy = json_copy(order);
        if (!copy || json_object_set_new(copy, "ReceivedAt", json_string(stamp)) < 0) {
                json_decref(copy);
                return NULL;
        }
        char *text = json_dumps(copy, JSON_INDENT(2));
        json_decref(copy);
        return text;
}

/* Reads an existing order file. Returns 1 when it holds this order, 0 when it holds
 * something else, -errno when it cannot be read (-ENOENT: not there). */
static int existing_matches(struct file_instance *inst, const char *name, json_t *order)
{
        int fd = openat(inst->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        struct stat st;
        int ret = 0;
        if (fstat(fd, &st) < 0) {
                ret = -errno;
                goto out;
        }
        if (!S_ISREG(st.st_mode) || st.st_size > FILE_READ_MAX)
                goto out;
        json_t *on_disk = json_loadfd(fd, 0, NULL);
        if (json_is_object(on_disk)) {
                json_object_del(on_disk, "ReceivedAt");
                ret = json_equal(on_disk, order) ? 1 : 0;
        }
        json_decref(on_disk);
out:
        close(fd);
        return ret;
}

static int write_all(int fd, const char *buf, size_t len)
{
        while (len) {
                ssize_t n = write(fd, buf, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                buf += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Writes name durably; never replaces a file that is there. Returns 0, -EEXIST, or
 * -errno; *in_doubt is set when the file may exist but may not be durable. */
static int write_durable(struct file_instance *inst, const char *name, const char *text,
                         int *in_doubt)
{
        char tmp[96];
        int r;
        *in_doubt = 0;
        snprintf(tmp, sizeof(tmp), ".tmp.%ld.%ld.%u", (long)getpid(), (long)gettid(),
                 atomic_fetch_add(&tmp_counter, 1));
        int fd = openat(inst->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                        FILE_MODE);
        if (fd < 0)
                return -errno;
        /* The mode is the back-end's promise, whatever the agent's umask. */
        r = fchmod(fd, FILE_MODE) < 0 ? -errno : 0;
        if (r == 0)
                r = write_all(fd, text, strlen(text));
        if (r == 0)
                r = write_all(fd, "\n", 1);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && renameat2(inst->dirfd, tmp, inst->dirfd, name, RENAME_NOREPLACE) < 0) {
                r = -errno;
                if (r == -EINVAL) {
                        /* A file system without RENAME_NOREPLACE: link refuses to replace too. */
                        r = linkat(inst->dirfd, tmp, inst->dirfd, name, 0) < 0 ? -errno : 0;
                }
        }
        unlinkat(inst->dirfd, tmp, 0);
        if (r == 0 && fsync(inst->dirfd) < 0) {
                r = -errno;
                *in_doubt = 1;
        }
        return r;
}

static int file_execute(void *session, const struct ca_backend_order *order,
                        const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                        struct ca_backend_error *err)
{
        struct file_instance *inst = session;
        char name[FILE_NAME_MAX + 80];
        char path[FILE_DIR_MAX + FILE_NAME_MAX + 96];
        char *text = NULL;
        int rc = CA_BACKEND_OK;
        json_t *obj = order_object(order);
        if (!obj)
                return host->error(err, CA_BACKEND_EINTERNAL, NULL, "cannot read the order's JSON");
        safe_name(host->order_key(order), name);
        snprintf(path, sizeof(path), "%s/%s", inst->dir, name);

        for (int attempt = 0; attempt < 2; attempt++) {
                int m = existing_matches(inst, name, obj);
                if (m == 1) {
                        host->result_set(r, CA_BACKEND_EXECUTED, path, "%s already written", path);
                        goto out;
                }
                if (m == 0) {
                        host->result_set(r, CA_BACKEND_ERRORED, path,
                                         "%s already holds a different order with this key; it "
                                         "was left as it is",
                                         path);
                        goto out;
                }
                if (m == -ELOOP) {
                        host->result_set(r, CA_BACKEND_ERRORED, path,
                                         "%s is a symbolic link; it was left as it is", path);
                        goto out;
                }
                if (m != -ENOENT) {
                        rc = host->error(err, CA_BACKEND_EUNAVAILABLE, NULL, "cannot read %s: %s",
                                         path, strerror(-m));
                        goto out;
                }
                if (!text)
                        text = content_new(obj);
                if (!text) {
                        rc = host->error(err, CA_BACKEND_EINTERNAL, NULL, "out of memory");
                        goto out;
                }
                int in_doubt;
                int w = write_durable(inst, name, text, &in_doubt);
                if (w == 0) {
                        host->result_set(r, CA_BACKEND_EXECUTED, path, "written to %s", path);
                        goto out;
                }
                if (in_doubt) {
                        rc = host->error(err, CA_BACKEND_EINDOUBT, NULL,
                                         "%s: written, but the directory could not be synced: %s",
                                         path, strerror(-w));
                        goto out;
                }
                if (w != -EEXIST) {
                        rc = host->error(err, CA_BACKEND_EUNAVAILABLE, NULL, "cannot write %s: %s",
                                         path, strerror(-w));
                        goto out;
                }
                /* Someone wrote it meanwhile: look again at what is there. */
        }
        rc = host->error(err, CA_BACKEND_EINTERNAL, NULL, "%s keeps changing under us", path);
out:
        free(text);
        json_decref(obj);
        return rc;
}

static int file_probe(void *session, const struct ca_backend_order *order,
                      const struct ca_backend_settings *mapping, enum ca_backend_probe *answer,
                      struct ca_backend_result *r, struct ca_backend_error *err)
{
        struct file_instance *inst = session;
        char name[FILE_NAME_MAX + 80];
        char path[FILE_DIR_MAX + FILE_NAME_MAX + 96];
        struct stat st;
        safe_name(host->order_key(order), name);
        snprintf(path, sizeof(path), "%s/%s", inst->dir, name);
        if (fstatat(inst->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                *answer = CA_BACKEND_PROBE_APPLIED;
                host->result_set(r, CA_BACKEND_EXECUTED, path, "%s already written", path);
                return CA_BACKEND_OK;
        }
        if (errno != ENOENT)
                return host->error(err, CA_BACKEND_EUNAVAILABLE, NULL, "cannot look at %s: %s",
                                   path, strerror(errno));
        *answer = CA_BACKEND_PROBE_NOT_APPLIED;
        return CA_BACKEND_OK;
}

static int file_check(void *session, struct ca_backend_error *err)
{
        struct file_instance *inst = session;
        struct stat held, named;
        /* The directory we hold must still be the one the setting names: a removed or
         * replaced directory would swallow every order. */
        if (fstat(inst->dirfd, &held) < 0 || held.st_nlink == 0 || stat(inst->dir, &named) < 0 ||
            held.st_dev != named.st_dev || held.st_ino != named.st_ino)
                return host->error(err, CA_BACKEND_EUNAVAILABLE, "directory",
                                   "%s was removed or replaced since the agent started", inst->dir);
        if (faccessat(inst->dirfd, ".", W_OK | X_OK, AT_EACCESS) < 0)
                return host->error(err, CA_BACKEND_EUNAVAILABLE, "directory",
                                   "cannot write into %s: %s", inst->dir, strerror(errno));
        return CA_BACKEND_OK;
}

static int file_describe(void *session, const struct ca_backend_order *order,
                         const struct ca_backend_settings *mapping, struct ca_backend_result *r,
                         struct ca_backend_error *err)
{
        struct file_instance *inst = session;
        char name[FILE_NAME_MAX + 80];
        safe_name(host->order_key(order), name);
        /* The file gets the order whole; what is shown hides its values (redact.h). */
        char *text = redact_order_json(host->order_json(order));
        host->result_set(r, CA_BACKEND_EXECUTED, NULL,
                         "would write %s/%s (unless already there) with the order plus "
                         "\"ReceivedAt\": %s",
                         inst->dir, name, text ? text : "(none)");
        free(text);
        return CA_BACKEND_OK;
}

static const struct ca_backend_ops ops = {
    .abi_version = CA_BACKEND_ABI_VERSION,
    .size = sizeof(struct ca_backend_ops),
    .signature = CA_BACKEND_SIGNATURE,
    .name = "file",
    .description = "writes each order as a JSON file, atomically",
    .instance_new = file_instance_new,
    .mapping_check = file_mapping_check,
    .instance_free = file_instance_free,
    .session_open = file_session_open,
    .session_close = file_session_close,
    .execute = file_execute,
    .probe = file_probe,
    .check = file_check,
    .describe = file_describe,
};

CA_BACKEND_DEFINE_ENTRY(ops, host, log)
