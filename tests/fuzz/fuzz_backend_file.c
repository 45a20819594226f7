/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the file back-end: an order's key turned into a file name, and
 * the order written, for real, into a temporary directory (tmpfs when there is one).
 *
 * The directory the instance writes to is <root>/a/out. After each order the harness
 * checks that nothing but that chain exists under <root> (a name escaping with "..",
 * "/" or a link would land there), that the order left exactly one plain, visible
 * .json file directly in out (no temporary file left behind), that the reported path
 * is that file, that writing the same order again is Executed (idempotent) and that
 * probe then answers "applied". Then it empties out for the next input.
 * Seeds: tests/fuzz/corpus/backend_file/; dictionary: tests/fuzz/backend.dict. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_backend_util.h"

static struct {
        const struct ca_backend_ops *ops;
        struct ca_settings conn;
        struct ca_settings map;
        void *inst;
        void *sess;
        char root[128];
        char mid[160];
        char out[192];
} fx;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
        (void)st;
        (void)flag;
        (void)f;
        return remove(path);
}

static void cleanup(void)
{
        if (fx.ops) {
                fx.ops->session_close(fx.sess);
                fx.ops->instance_free(fx.inst);
        }
        if (fx.root[0])
                nftw(fx.root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        fuzz_settings_clear(&fx.conn);
        fuzz_settings_clear(&fx.map);
}

static void setup(void)
{
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fx.root, sizeof(fx.root), "%s/ca-fuzz-file-XXXXXX", dir);
        if (!mkdtemp(fx.root))
                abort();
        snprintf(fx.mid, sizeof(fx.mid), "%s/a", fx.root);
        snprintf(fx.out, sizeof(fx.out), "%s/out", fx.mid);
        if (mkdir(fx.mid, 0700) < 0 || mkdir(fx.out, 0700) < 0)
                abort();
        fuzz_settings_make(&fx.conn,
                           (const char *const[]){"backend", "file", "directory", fx.out, NULL});
        fuzz_settings_make(&fx.map, (const char *const[]){"connector", "files", NULL});
        fx.ops = fuzz_plugin();
        struct ca_backend_error err = {0};
        if (fx.ops->instance_new(backend_host(), backend_settings(&fx.conn), &fx.inst, &err) !=
                CA_BACKEND_OK ||
            fx.ops->mapping_check(fx.inst, backend_settings(&fx.map), &err) != CA_BACKEND_OK ||
            fx.ops->session_open(fx.inst, &fx.sess, &err) != CA_BACKEND_OK) {
                fprintf(stderr, "fuzz_backend_file: setup failed: %s\n", err.message);
                abort();
        }
        atexit(cleanup);
}

/* The only entry of dir must be name. */
static void expect_only(const char *dir, const char *name)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        if (!d)
                abort();
        while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                if (strcmp(e->d_name, name) != 0) {
                        fprintf(stderr, "%s/%s: created outside the back-end's directory\n", dir,
                                e->d_name);
                        abort();
                }
        }
        closedir(d);
}

/* Checks what out holds, returns how many files, and empties it. written is the
 * reported path, or NULL. */
static size_t check_and_empty_out(const char *written)
{
        DIR *d = opendir(fx.out);
        struct dirent *e;
        size_t files = 0;
        if (!d)
                abort();
        while ((e = readdir(d))) {
                struct stat st;
                char path[512];
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", fx.out, e->d_name);
                if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
                        fprintf(stderr, "%s: not a plain file\n", path);
                        abort();
                }
                size_t n = strlen(e->d_name);
                if (e->d_name[0] == '.' || n < 6 || strcmp(e->d_name + n - 5, ".json") != 0) {
                        fprintf(stderr, "%s: hidden, temporary or not .json\n", path);
                        abort();
                }
                if (written && strcmp(path, written) != 0) {
                        fprintf(stderr, "%s: not the reported %s\n", path, written);
                        abort();
                }
                files++;
                if (unlink(path) < 0)
                        abort();
        }
        closedir(d);
        return files;
}

static int run(int op, const struct ca_order *o, struct ca_backend_result *r)
{
        struct ca_backend_error err = {0};
        enum ca_backend_probe answer = 0;
        int rc;
        memset(r, 0, sizeof(*r));
        if (op == 0)
                rc =
                    fx.ops->describe(fx.sess, backend_order(o), backend_settings(&fx.map), r, &err);
        else if (op == 1)
                rc = fx.ops->execute(fx.sess, backend_order(o), backend_settings(&fx.map), r, &err);
        else
                rc = fx.ops->probe(fx.sess, backend_order(o), backend_settings(&fx.map), &answer, r,
                                   &err);
        if (op == 2 && rc == CA_BACKEND_OK && answer != CA_BACKEND_PROBE_APPLIED)
                abort(); /* after a write, probe must see it */
        if (op != 2 || answer == CA_BACKEND_PROBE_APPLIED)
                fuzz_check_outcome(o, rc, r, &err);
        return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *map_text, *json;
        size_t map_len, json_len;

        if (!fx.ops)
                setup();
        fuzz_split(data, size, &map_text, &map_len, &json, &json_len);
        struct ca_order *o = fuzz_order(json, json_len);
        if (!o)
                return 0;
        struct ca_backend_result r, again;
        run(0, o, &r);
        int rc = run(1, o, &r);
        expect_only(fx.root, "a");
        expect_only(fx.mid, "out");
        if (rc == CA_BACKEND_OK && r.state == CA_BACKEND_EXECUTED) {
                if (run(1, o, &again) != CA_BACKEND_OK || again.state != CA_BACKEND_EXECUTED ||
                    strcmp(again.resource_identifier, r.resource_identifier) != 0) {
                        fprintf(stderr, "writing again was not Executed: %s\n", again.message);
                        abort();
                }
                struct ca_backend_result p;
                if (run(2, o, &p) != CA_BACKEND_OK)
                        abort();
                if (check_and_empty_out(r.resource_identifier) != 1) {
                        fprintf(stderr, "no file where %s was reported\n", r.resource_identifier);
                        abort();
                }
        } else if (check_and_empty_out(NULL) != 0) {
                abort(); /* a failed or Errored write left something behind */
        }
        order_free(o);
        return 0;
}
