/* SPDX-License-Identifier: Apache-2.0 */
/* backend_test_util: what the back-end tests share: settings and orders built from text,
 * plug-ins loaded from the build tree through the real loader, and temporary
 * directories. Header-only (static functions) so that each test stays one file. */
#ifndef CA_BACKEND_TEST_UTIL_H
#define CA_BACKEND_TEST_UTIL_H

#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend_loader.h"
#include "config.h"
#include "order.h"

/* Settings from "key", "value", ..., NULL. */
static inline void settings_make(struct ca_settings *s, const char *const *kv)
{
        size_t n = 0;
        while (kv[2 * n])
                n++;
        s->items = calloc(n ? n : 1, sizeof(*s->items));
        assert_non_null(s->items);
        s->count = n;
        for (size_t i = 0; i < n; i++) {
                s->items[i].key = strdup(kv[2 * i]);
                s->items[i].value = strdup(kv[2 * i + 1]);
                s->items[i].line = (unsigned)i + 1;
        }
}

/* Appends key = value to s. */
static inline void settings_add(struct ca_settings *s, const char *key, const char *value)
{
        s->items = realloc(s->items, (s->count + 1) * sizeof(*s->items));
        assert_non_null(s->items);
        s->items[s->count] = (struct ca_setting){strdup(key), strdup(value), 0};
        s->count++;
}

static inline void settings_clear(struct ca_settings *s)
{
        for (size_t i = 0; i < s->count; i++) {
                free(s->items[i].key);
                free(s->items[i].value);
        }
        free(s->items);
        s->items = NULL;
        s->count = 0;
}

static inline struct ca_order *order_make(const char *json)
{
        json_error_t jerr;
        json_t *obj = json_loads(json, 0, &jerr);
        if (!obj)
                fail_msg("bad test JSON: %s: %s", jerr.text, json);
        struct ca_order *o = NULL;
        struct ca_error err = {0};
        int r = order_from_json(obj, &o, &err);
        json_decref(obj);
        if (r < 0)
                fail_msg("order_from_json: %s", err.msg);
        return o;
}

static inline const char *test_backend_dir(void)
{
        static char dir[4096];
        const char *b = getenv("CA_TEST_BUILD_DIR");
        assert_non_null(b);
        snprintf(dir, sizeof(dir), "%s/backends", b);
        return dir;
}

static inline struct backend *load_backend(const char *name)
{
        struct backend *b = NULL;
        struct ca_error err = {0};
        int r = backend_load(test_backend_dir(), name, &b, &err);
        if (r < 0)
                fail_msg("backend_load %s: %s", name, err.msg);
        return b;
}

static inline char *tmpdir_make(void)
{
        char *d = strdup("/tmp/ca-backend-test-XXXXXX");
        assert_non_null(d);
        assert_non_null(mkdtemp(d));
        return d;
}

static int tmpdir_rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
        (void)st;
        (void)flag;
        (void)f;
        return remove(path);
}

static inline void tmpdir_remove(char *d)
{
        if (!d)
                return;
        nftw(d, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(d);
}

static inline void write_text(const char *path, const char *text, mode_t mode)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(path, mode), 0);
}

/* Runs argv (no shell) under timeout(1) with a bound of timeout_s seconds; returns its
 * exit status (128 when killed), its output in out. */
static inline int test_run_bounded(const char *timeout_s, char *const argv[], char *out,
                                   size_t outlen)
{
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                dup2(fds[1], 1);
                dup2(fds[1], 2);
                close(fds[0]);
                close(fds[1]);
                char *args[32] = {"timeout", (char *)timeout_s};
                size_t n = 2;
                for (size_t i = 0; argv[i] && n < 31; i++)
                        args[n++] = argv[i];
                args[n] = NULL;
                execvp("timeout", args);
                _exit(127);
        }
        close(fds[1]);
        size_t len = 0;
        ssize_t got;
        while ((got = read(fds[0], out + len, outlen - 1 - len)) > 0 && len + 1 < outlen)
                len += (size_t)got;
        out[len] = '\0';
        close(fds[0]);
        int st = 0;
        waitpid(pid, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

#endif
