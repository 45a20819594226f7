/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for common/result.c: results, the ProvisioningResults body, the answer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "order.h"
#include "timeutil.h"
#include "utf8.h"

#define EXECUTED_AT 1795342502 /* date -u -d "2026-11-22 10:15:02" +%s */

static struct ca_order *parse_order(const char *text)
{
        json_error_t jerr;
        json_t *obj = json_loads(text, 0, &jerr);
        if (!obj)
                fail_msg("test input is not JSON: %s", jerr.text);
        struct ca_order *o = NULL;
        if (order_from_json(obj, &o, NULL) != 0)
                fail_msg("order_from_json failed for %s", text);
        json_decref(obj);
        return o;
}

static struct ca_order *example_order(void)
{
        return parse_order(
            "{\"Id\":\"b1f0c2e4-0001\",\"AssignedResourceTypeId\":\"3930001\","
            "\"ChangeType\":\"Added\",\"WorkflowInstanceId\":\"81\","
            "\"Owner\":{\"Id\":\"21511\"},\"ResourceType\":{\"Id\":\"-41\","
            "\"Identifier\":\"LDAP_User_NominativeUser\",\"SourceEntityType\":{\"Id\":\"51\"}},"
            "\"Changes\":{\"uid\":\"jbond\"}}");
}

static json_t *load_body(const char *text)
{
        json_error_t jerr;
        json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                fail_msg("results_body is not JSON (%s): %s", jerr.text, text);
        return root;
}

static const char *str(json_t *obj, const char *key)
{
        json_t *v = json_object_get(obj, key);
        if (!json_is_string(v))
                fail_msg("%s is not a string", key);
        return json_string_value(v);
}

static void test_results_body_round_trip(void **state)
{
        struct ca_order *with_id = example_order();
        struct ca_order *without =
            parse_order("{\"AssignedResourceTypeId\":\"77\",\"ChangeType\":\"Sideways\"}");
        struct ca_result *rs[2];
        rs[0] = result_new(with_id, CA_RESULT_EXECUTED, NULL,
                           "uid=jbond,ou=people,dc=example,dc=com", EXECUTED_AT);
        rs[1] = result_new(without, CA_RESULT_ERRORED, without->invalid, NULL, 0);
        /* Results own copies: the orders can go first. */
        order_free(with_id);
        order_free(without);
        assert_non_null(rs[0]);
        assert_non_null(rs[1]);
        assert_string_equal(rs[0]->order_key, "b1f0c2e4-0001");
        assert_int_equal(strlen(rs[1]->order_key), 64);
        assert_string_equal(rs[0]->message, "");

        char *body = results_body("ldap-main", "agent-paris-01", rs, 2);
        assert_non_null(body);
        json_t *root = load_body(body);
        assert_int_equal(json_object_size(root), 3);
        assert_string_equal(str(root, "ConnectorId"), "ldap-main");
        assert_string_equal(str(root, "AgentIdentifier"), "agent-paris-01");
        json_t *list = json_object_get(root, "ProvisioningResults");
        assert_int_equal(json_array_size(list), 2);

        json_t *e = json_array_get(list, 0);
        assert_int_equal(json_object_size(e), 9);
        assert_string_equal(str(e, "Id"), "b1f0c2e4-0001");
        assert_string_equal(str(e, "AssignmentId"), "3930001");
        assert_string_equal(str(e, "ProvisioningState"), "Executed");
        assert_string_equal(str(e, "Message"), "");
        assert_string_equal(str(e, "ChangeType"), "Added");
        assert_string_equal(str(e, "OwnerId"), "21511");
        assert_string_equal(str(e, "OwnerType"), "51");
        assert_string_equal(str(e, "ResourceIdentifier"), "uid=jbond,ou=people,dc=example,dc=com");
        assert_string_equal(str(e, "ExecutedAt"), "2026-11-22T10:15:02Z");

        e = json_array_get(list, 1);
        assert_int_equal(json_object_size(e), 5);
        assert_null(json_object_get(e, "Id"));
        assert_null(json_object_get(e, "OwnerId"));
        assert_null(json_object_get(e, "OwnerType"));
        assert_null(json_object_get(e, "ResourceIdentifier"));
        assert_string_equal(str(e, "AssignmentId"), "77");
        assert_string_equal(str(e, "ProvisioningState"), "Errored");
        assert_string_equal(str(e, "Message"), "unknown ChangeType \"Sideways\"");
        assert_string_equal(str(e, "ChangeType"), "Sideways");
        assert_string_equal(str(e, "ExecutedAt"), "1970-01-01T00:00:00Z");

        json_decref(root);
        free(body);
        result_free(rs[0]);
        result_free(rs[1]);
        result_free(NULL);
}

static void test_results_body_empty_and_order(void **state)
{
        char *body = results_body("c", "a", NULL, 0);
        assert_non_null(body);
        assert_string_equal(
            body, "{\"ConnectorId\":\"c\",\"AgentIdentifier\":\"a\",\"ProvisioningResults\":[]}");
        free(body);

        /* Fields come out in the protocol's order. */
        struct ca_order *o = example_order();
        struct ca_result *r = result_new(o, CA_RESULT_EXECUTED, "ok", "x", EXECUTED_AT);
        order_free(o);
        body = results_body("c", "a", &r, 1);
        assert_string_equal(
            body, "{\"ConnectorId\":\"c\",\"AgentIdentifier\":\"a\",\"ProvisioningResults\":[{"
                  "\"Id\":\"b1f0c2e4-0001\",\"AssignmentId\":\"3930001\","
                  "\"ProvisioningState\":\"Executed\",\"Message\":\"ok\",\"ChangeType\":\"Added\","
                  "\"OwnerId\":\"21511\",\"OwnerType\":\"51\",\"ResourceIdentifier\":\"x\","
                  "\"ExecutedAt\":\"2026-11-22T10:15:02Z\"}]}");
        free(body);
        result_free(r);
}

static void check_message(const char *in, const char *expected)
{
        struct ca_order *o = example_order();
        struct ca_result *r = result_new(o, CA_RESULT_ERRORED, in, in, 0);
        order_free(o);
        assert_non_null(r);
        assert_string_equal(r->message, expected);
        assert_string_equal(r->resource_identifier, expected);
        /* And jansson takes it, so the body is never lost. */
        char *body = results_body("c", "a", &r, 1);
        assert_non_null(body);
        json_t *root = load_body(body);
        json_t *e = json_array_get(json_object_get(root, "ProvisioningResults"), 0);
        assert_string_equal(str(e, "Message"), expected);
        json_decref(root);
        free(body);
        result_free(r);
}

#define FFFD "\xef\xbf\xbd"

static void test_message_utf8(void **state)
{
        check_message("plain", "plain");
        check_message("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
        check_message("Latin-1 caf\xe9!", "Latin-1 caf" FFFD "!");
        check_message("\xff\xfe", FFFD FFFD);
        check_message("overlong \xc0\xaf", "overlong " FFFD FFFD);
        check_message("overlong3 \xe0\x80\xaf", "overlong3 " FFFD FFFD FFFD);
        check_message("surrogate \xed\xa0\x80", "surrogate " FFFD FFFD FFFD);
        check_message("too big \xf4\x90\x80\x80", "too big " FFFD FFFD FFFD FFFD);
        check_message("cut \xe2\x82", "cut " FFFD FFFD);
        check_message("lone \x80 cont", "lone " FFFD " cont");
        check_message("ctl \x01\t\n", "ctl \x01\t\n");
}

static void test_message_cap(void **state)
{
        enum { M = CA_RESULT_MESSAGE_MAX };
        char *in = malloc(M * 3 + 1);
        char *expected = malloc(M + 1);

        /* Exactly at the cap: kept whole. */
        memset(in, 'a', M);
        in[M] = '\0';
        check_message(in, in);

        /* One byte over: cut, with "..." within the cap. */
        in[M] = 'b';
        in[M + 1] = '\0';
        memset(expected, 'a', M - 3);
        memcpy(expected + M - 3, "...", 4);
        check_message(in, expected);

        /* Far over. */
        memset(in, 'a', M * 3);
        in[M * 3] = '\0';
        check_message(in, expected);

        /* Never cut inside a character: 2047 'a' and a two-byte character is 2049 bytes. */
        memset(in, 'a', M - 1);
        memcpy(in + M - 1, "\xc3\xa9", 3);
        check_message(in, expected);

        /* Replacement characters count at their encoded size. */
        memset(in, 0xff, M);
        in[M] = '\0';
        size_t fit = (M - 3) / 3;
        for (size_t i = 0; i < fit; i++)
                memcpy(expected + 3 * i, FFFD, 3);
        memcpy(expected + 3 * fit, "...", 4);
        check_message(in, expected);
        assert_true(strlen(expected) <= M);

        free(in);
        free(expected);
}

static void test_results_body_repairs_foreign_results(void **state)
{
        /* A result restored from elsewhere (not result_new) with invalid UTF-8. */
        struct ca_result r = {
            .order_key = "k",
            .assignment_id = "1",
            .state = CA_RESULT_ERRORED,
            .message = "bad \xff byte",
            .change_type = "Added",
            .owner_id = "\xc0",
            .executed_at = EXECUTED_AT,
        };
        struct ca_result *rs[1] = {&r};
        char *body = results_body("conn\xfe", "a", rs, 1);
        assert_non_null(body);
        json_t *root = load_body(body);
        assert_string_equal(str(root, "ConnectorId"), "conn" FFFD);
        json_t *e = json_array_get(json_object_get(root, "ProvisioningResults"), 0);
        assert_string_equal(str(e, "Message"), "bad " FFFD " byte");
        assert_string_equal(str(e, "OwnerId"), FFFD);
        assert_null(json_object_get(e, "Id"));
        json_decref(root);
        free(body);

        assert_string_equal(result_state_name(CA_RESULT_EXECUTED), "Executed");
        assert_string_equal(result_state_name(CA_RESULT_ERRORED), "Errored");
}

static void test_result_from_order_without_assignment(void **state)
{
        /* Identified by Id only (AssignedResourceTypeId missing): still answerable. */
        struct ca_order *o = parse_order("{\"Id\":\"o-9\",\"ChangeType\":\"Added\"}");
        assert_non_null(o->invalid);
        struct ca_result *r = result_new(o, CA_RESULT_ERRORED, o->invalid, NULL, EXECUTED_AT);
        order_free(o);
        assert_string_equal(r->assignment_id, "");
        assert_string_equal(r->message, "AssignedResourceTypeId: required");
        assert_null(r->owner_id);
        assert_null(r->resource_identifier);
        result_free(r);
        assert_null(result_new(NULL, CA_RESULT_EXECUTED, NULL, NULL, 0));
}

static int ack(const char *body, long *rec, long *dup, struct ca_error *err)
{
        ca_error_clear(err);
        return results_ack_parse(body, strlen(body), rec, dup, err);
}

static void test_ack_parse_good(void **state)
{
        long rec = -1, dup = -1;
        struct ca_error err;
        assert_int_equal(ack("{\"Received\": 1, \"Duplicates\": 0}", &rec, &dup, &err), 0);
        assert_int_equal(rec, 1);
        assert_int_equal(dup, 0);
        assert_int_equal(
            ack(" {\"Duplicates\":7,\"Received\":250,\"Extra\":[1]}\n", &rec, &dup, &err), 0);
        assert_int_equal(rec, 250);
        assert_int_equal(dup, 7);
        assert_int_equal(
            results_ack_parse("{\"Received\":3,\"Duplicates\":2}xyz", 29, &rec, &dup, &err), 0);
        assert_int_equal(rec, 3);
        assert_int_equal(dup, 2);
}

static void test_ack_parse_bad(void **state)
{
        static const struct {
                const char *body;
                const char *message; /* NULL: any "invalid JSON" message */
        } cases[] = {
            {"", "ProvisioningResults answer: empty body"},
            {"[]", "ProvisioningResults answer: expected an object, got an array"},
            {"null", "ProvisioningResults answer: expected an object, got null"},
            {"{}", "ProvisioningResults answer: Received: missing"},
            {"{\"Received\":1}", "ProvisioningResults answer: Duplicates: missing"},
            {"{\"Received\":\"1\",\"Duplicates\":0}",
             "ProvisioningResults answer: Received: expected an integer, got a string"},
            {"{\"Received\":1.0,\"Duplicates\":0}",
             "ProvisioningResults answer: Received: expected an integer, got a real number"},
            {"{\"Received\":null,\"Duplicates\":0}",
             "ProvisioningResults answer: Received: expected an integer, got null"},
            {"{\"Received\":1,\"Duplicates\":true}",
             "ProvisioningResults answer: Duplicates: expected an integer, got a boolean"},
            {"{\"Received\":-1,\"Duplicates\":0}",
             "ProvisioningResults answer: Received: -1 is out of range"},
            {"{\"Received\":1,\"Duplicates\":0,\"Received\":2}", NULL},
            {"{\"Received\":99999999999999999999999,\"Duplicates\":0}", NULL},
            {"{\"Received\":1,", NULL},
            {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
             "ProvisioningResults answer: nested deeper than 64 levels"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                long rec = -7, dup = -7;
                struct ca_error err;
                if (ack(cases[i].body, &rec, &dup, &err) != -EBADMSG)
                        fail_msg("case %zu (%s) was accepted", i, cases[i].body);
                assert_int_equal(rec, -7);
                assert_int_equal(dup, -7);
                assert_int_equal(err.code, -EBADMSG);
                if (cases[i].message)
                        assert_string_equal(err.msg, cases[i].message);
                else if (strncmp(err.msg, "ProvisioningResults answer: invalid JSON", 40) != 0)
                        fail_msg("case %zu: %s", i, err.msg);
        }
        long rec, dup;
        assert_int_equal(results_ack_parse(NULL, 5, &rec, &dup, NULL), -EBADMSG);
}

/* What results_body wrote when it built a jansson tree and dumped it (JSON_COMPACT): the
 * body written straight into a buffer must be the same bytes. */
static void old_field(json_t *o, const char *k, const char *v)
{
        json_t *s = json_string(v);
        if (!s) {
                char *fixed = utf8_dup(v, strlen(v) * 3 + 3);
                s = json_string(fixed);
                free(fixed);
        }
        assert_non_null(s);
        json_object_set_new(o, k, s);
}

static char *old_body(const char *conn, const char *agent, struct ca_result *const *rs, size_t n)
{
        json_t *root = json_object(), *list = json_array();
        old_field(root, "ConnectorId", conn);
        old_field(root, "AgentIdentifier", agent);
        for (size_t i = 0; i < n; i++) {
                const struct ca_result *r = rs[i];
                char when[32];
                json_t *e = json_object();
                time_iso8601(r->executed_at, when, sizeof(when));
                if (r->id)
                        old_field(e, "Id", r->id);
                old_field(e, "AssignmentId", r->assignment_id ? r->assignment_id : "");
                old_field(e, "ProvisioningState", result_state_name(r->state));
                old_field(e, "Message", r->message ? r->message : "");
                old_field(e, "ChangeType", r->change_type ? r->change_type : "");
                if (r->owner_id)
                        old_field(e, "OwnerId", r->owner_id);
                if (r->owner_type)
                        old_field(e, "OwnerType", r->owner_type);
                if (r->resource_identifier)
                        old_field(e, "ResourceIdentifier", r->resource_identifier);
                old_field(e, "ExecutedAt", when);
                json_array_append_new(list, e);
        }
        json_object_set_new(root, "ProvisioningResults", list);
        char *text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        return text;
}

static void test_results_body_same_bytes_as_jansson(void **state)
{
        (void)state;
        char controls[40];
        for (int c = 1; c < 0x20; c++)
                controls[c - 1] = (char)c;
        snprintf(controls + 0x1f, sizeof(controls) - 0x1f, "\x7f/");
        const char *texts[] = {"",
                               "plain",
                               "quote \" backslash \\ slash / end",
                               controls,
                               "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf",
                               "bad \xff byte \xc0\x80 overlong \xed\xa0\x80 surrogate",
                               "cut \xe2\x82",
                               "\xf4\x90\x80\x80 past U+10FFFF"};
        size_t nt = sizeof(texts) / sizeof(texts[0]);
        struct ca_result rs[16];
        struct ca_result *ptrs[16];
        for (size_t i = 0; i < nt * 2; i++) {
                const char *t = texts[i % nt];
                rs[i] = (struct ca_result){
                    .order_key = "k",
                    .id = i % 3 ? (char *)t : NULL,
                    .assignment_id = i % 4 ? (char *)t : NULL,
                    .state = i % 2 ? CA_RESULT_EXECUTED : CA_RESULT_ERRORED,
                    .message = i % 5 ? (char *)t : NULL,
                    .change_type = (char *)t,
                    .owner_id = i % 2 ? (char *)t : NULL,
                    .owner_type = i % 3 == 1 ? (char *)t : NULL,
                    .resource_identifier = i >= nt ? (char *)t : NULL,
                    .executed_at = EXECUTED_AT + (int64_t)i,
                };
                ptrs[i] = &rs[i];
        }
        for (size_t n = 0; n <= nt * 2; n++) {
                char *want = old_body(texts[n % nt], texts[(n + 3) % nt], ptrs, n);
                char *got = results_body(texts[n % nt], texts[(n + 3) % nt], ptrs, n);
                assert_non_null(want);
                assert_non_null(got);
                if (strcmp(want, got) != 0)
                        fail_msg("results_body differs from jansson's:\n got  %s\n want %s", got,
                                 want);
                free(want);
                free(got);
        }
        /* NULL names are "" as before. */
        char *want = old_body("", "", ptrs, 1);
        char *got = results_body(NULL, NULL, ptrs, 1);
        assert_string_equal(got, want);
        free(want);
        free(got);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_results_body_round_trip),
            cmocka_unit_test(test_results_body_empty_and_order),
            cmocka_unit_test(test_message_utf8),
            cmocka_unit_test(test_message_cap),
            cmocka_unit_test(test_results_body_repairs_foreign_results),
            cmocka_unit_test(test_results_body_same_bytes_as_jansson),
            cmocka_unit_test(test_result_from_order_without_assignment),
            cmocka_unit_test(test_ack_parse_good),
            cmocka_unit_test(test_ack_parse_bad),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
