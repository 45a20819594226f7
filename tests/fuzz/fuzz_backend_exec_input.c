/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the exec back-end's handling of outside input:
 *
 * - the program's input: every order is described (dry run: the program, its arguments
 *   and the exact standard input it would get);
 * - the program's answer: an order whose JSON mentions "ProvisioningState" is also
 *   executed, for real, by /bin/cat, which echoes the order back: so the answer parser
 *   reads fuzzed bytes, and its verdict is checked against what protocol says it must be;
 * - the connector settings (command quoting, env list, sizes): when the input has a
 *   settings part (see fuzz_backend_util.h), they build a second instance that is only
 *   described, never run: a fuzzed command line is never executed.
 * Seeds: tests/fuzz/corpus/backend_exec_input/; dictionary: tests/fuzz/backend.dict. */
#include <unistd.h>

#include "fuzz_backend_util.h"

#define FUZZ_ECHO         "/bin/cat"
#define FUZZ_OUTPUT_LIMIT (64 * 1024) /* the plug-in's default max_output */

static struct {
        const struct ca_backend_ops *ops;
        struct ca_settings conn;
        struct ca_settings map;
        void *inst;
        void *sess;
} fx;

static void cleanup(void)
{
        if (fx.ops) {
                fx.ops->session_close(fx.sess);
                fx.ops->instance_free(fx.inst);
        }
        fuzz_settings_clear(&fx.conn);
        fuzz_settings_clear(&fx.map);
}

static void setup(void)
{
        fuzz_settings_make(&fx.conn, (const char *const[]){"backend", "exec", "command", FUZZ_ECHO,
                                                           "timeout", "10s", "env", "LANG", NULL});
        fuzz_settings_make(&fx.map, (const char *const[]){"connector", "prog", NULL});
        fx.ops = fuzz_plugin();
        struct ca_backend_error err = {0};
        if (fx.ops->instance_new(backend_host(), backend_settings(&fx.conn), &fx.inst, &err) !=
                CA_BACKEND_OK ||
            fx.ops->session_open(fx.inst, &fx.sess, &err) != CA_BACKEND_OK) {
                fprintf(stderr, "fuzz_backend_exec_input: setup failed: %s\n", err.message);
                abort();
        }
        atexit(cleanup);
}

/* What the agent must conclude from an answer (backends.md, "exec"), for a program that
 * exited 0 and printed text: Executed only for a valid object saying so. */
static enum ca_backend_state expected_state(const char *text)
{
        json_t *a = json_loads(text, 0, NULL);
        json_t *state = json_object_get(a, "ProvisioningState");
        json_t *msg = json_object_get(a, "Message");
        json_t *ri = json_object_get(a, "ResourceIdentifier");
        int ok = json_is_object(a) && json_is_string(state) &&
                 strcmp(json_string_value(state), "Executed") == 0 &&
                 (!msg || json_is_string(msg) || json_is_null(msg)) &&
                 (!ri || json_is_string(ri) || json_is_null(ri));
        json_decref(a);
        return ok ? CA_BACKEND_EXECUTED : CA_BACKEND_ERRORED;
}

static void describe(void *sess, const struct ca_order *o)
{
        struct ca_backend_result r = {0};
        struct ca_backend_error err = {0};
        int rc = fx.ops->describe(sess, backend_order(o), backend_settings(&fx.map), &r, &err);
        fuzz_check_outcome(o, rc, &r, &err);
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
        describe(fx.sess, o);

        if (map_text) {
                struct ca_settings conn = {0};
                struct ca_backend_error err = {0};
                void *inst = NULL, *sess = NULL;
                fuzz_settings_parse(&conn, map_text, map_len);
                int rc = fx.ops->instance_new(backend_host(), backend_settings(&conn), &inst, &err);
                if (!fuzz_code_known(rc) || (rc != CA_BACKEND_OK && !err.message[0]))
                        abort();
                if (rc == CA_BACKEND_OK) {
                        if (fx.ops->session_open(inst, &sess, &err) != CA_BACKEND_OK)
                                abort();
                        describe(sess, o);
                        fx.ops->session_close(sess);
                        fx.ops->instance_free(inst);
                }
                fuzz_settings_clear(&conn);
        }

        const char *text = backend_host()->order_json(backend_order(o));
        if (text && strstr(text, "ProvisioningState") && strlen(text) < FUZZ_OUTPUT_LIMIT) {
                struct ca_backend_result r = {0};
                struct ca_backend_error err = {0};
                enum ca_backend_state want = expected_state(text);
                int rc =
                    fx.ops->execute(fx.sess, backend_order(o), backend_settings(&fx.map), &r, &err);
                fuzz_check_outcome(o, rc, &r, &err);
                if (rc != CA_BACKEND_OK || r.state != want) {
                        fprintf(stderr, "answer %s: got %s (%s), expected %s\n", text,
                                rc                               ? "a failure"
                                : r.state == CA_BACKEND_EXECUTED ? "Executed"
                                                                 : "Errored",
                                rc ? err.message : r.message,
                                want == CA_BACKEND_EXECUTED ? "Executed" : "Errored");
                        abort();
                }
        }
        order_free(o);
        return 0;
}
