/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for common/order.c: the ProvisioningData page and order parser and keys. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "order.h"

/* protocol.md §3, verbatim. */
static const char example_page[] =
    "{\n"
    "  \"ProvisioningOrdersList\": [\n"
    "    {\n"
    "      \"Id\": \"b1f0c2e4-0001\",\n"
    "      \"AssignedResourceTypeId\": \"3930001\",\n"
    "      \"ChangeType\": \"Added\",\n"
    "      \"WorkflowInstanceId\": \"81\",\n"
    "      \"Owner\": { \"Id\": \"21511\", \"Identifier\": \"007\", \"InternalDisplayName\": "
    "\"007 - Bond James\" },\n"
    "      \"ResourceType\": {\n"
    "        \"Id\": \"-41\",\n"
    "        \"Identifier\": \"LDAP_User_NominativeUser\",\n"
    "        \"SourceEntityType\": { \"Id\": \"51\", \"Identifier\": \"Directory_User\" },\n"
    "        \"TargetEntityType\": { \"Id\": \"70\", \"Identifier\": \"LDAP_User\" }\n"
    "      },\n"
    "      \"Changes\": {\n"
    "        \"uid\": \"jbond\",\n"
    "        \"givenName\": \"James\",\n"
    "        \"sn\": \"Bond\",\n"
    "        \"mail\": \"james.bond@example.com\",\n"
    "        \"memberOf_add\": [\"cn=agents,ou=groups,dc=example,dc=com\"],\n"
    "        \"memberOf_remove\": []\n"
    "      },\n"
    "      \"Resource\": { \"uid\": \"jbond\" },\n"
    "      \"Arguments\": { \"WorkflowIdentifier\": \"Directory_User_StartPersonnel\" }\n"
    "    }\n"
    "  ],\n"
    "  \"ContinuationToken\": null\n"
    "}\n";

/* The example order without its Id. */
static const char example_no_id[] =
    "{\"AssignedResourceTypeId\":\"3930001\",\"ChangeType\":\"Added\","
    "\"WorkflowInstanceId\":\"81\",\"Owner\":{\"Id\":\"21511\"},"
    "\"ResourceType\":{\"Id\":\"-41\",\"Identifier\":\"LDAP_User_NominativeUser\","
    "\"SourceEntityType\":{\"Id\":\"51\"}},"
    "\"Changes\":{\"uid\":\"jbond\",\"givenName\":\"James\",\"sn\":\"Bond\","
    "\"mail\":\"james.bond@example.com\","
    "\"memberOf_add\":[\"cn=agents,ou=groups,dc=example,dc=com\"],\"memberOf_remove\":[]}}";

/* Computed outside the code under test:
 *   C='{"givenName":"James","mail":"james.bond@example.com","memberOf_add":
 *      ["cn=agents,ou=groups,dc=example,dc=com"],"memberOf_remove":[],"sn":"Bond","uid":"jbond"}'
 *   printf '%s\000%s\000%s\000%s' 3930001 Added 81 "$C" | sha256sum */
#define EXAMPLE_KEY "6570dccacadf24097ae325a943b80d163079256c429c5d66348e5c0206084709"
/* printf '%s\000%s\000%s\000%s' 3930001 Deleted "" null | sha256sum */
#define DELETED_NULL_KEY "787b474571a58936b1b3b39fc21375570fbaab16a751536453bf78636cddcc95"
/* printf '%s\000%s\000%s\000%s' 3930001 Deleted "" '{}' | sha256sum */
#define DELETED_EMPTY_KEY "6bcdbd677c82fb9dca6e7be3bc1bb81926437c2fe2a629be3afd644d5e7a59c7"

static int parse_page(const char *body, struct ca_order_page *page, struct ca_error *err)
{
        ca_error_clear(err);
        return order_page_parse(body, strlen(body), page, err);
}

/* Parses one order object; fails the test when it is not identifiable. */
static struct ca_order *parse_order(const char *text)
{
        json_error_t jerr;
        json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj)
                fail_msg("test input is not JSON: %s: %s", jerr.text, text);
        struct ca_order *o = NULL;
        struct ca_error err = {0};
        int r = order_from_json(obj, &o, &err);
        json_decref(obj);
        if (r != 0)
                fail_msg("order_from_json: %d %s for %s", r, err.msg, text);
        return o;
}

static void test_example_order_fields(void **state)
{
        struct ca_order_page page;
        struct ca_error err;
        assert_int_equal(parse_page(example_page, &page, &err), 0);
        assert_int_equal(page.count, 1);
        assert_int_equal(page.skipped, 0);
        assert_null(page.continuation_token);
        struct ca_order *o = page.orders[0];
        assert_string_equal(o->key, "b1f0c2e4-0001");
        assert_string_equal(o->id, "b1f0c2e4-0001");
        assert_string_equal(o->assignment_id, "3930001");
        assert_int_equal(o->change, CA_CHANGE_ADDED);
        assert_string_equal(o->change_text, "Added");
        assert_string_equal(o->workflow_instance_id, "81");
        assert_string_equal(o->owner_id, "21511");
        assert_string_equal(o->owner_type, "51");
        assert_string_equal(o->resource_type, "LDAP_User_NominativeUser");
        assert_null(o->invalid);

        assert_true(json_is_object(o->json));
        assert_string_equal(json_string_value(json_object_get(json_object_get(o->json, "Owner"),
                                                              "InternalDisplayName")),
                            "007 - Bond James");
        assert_true(json_is_object(o->changes));
        assert_ptr_equal(o->changes, json_object_get(o->json, "Changes"));
        assert_int_equal(json_object_size(o->changes), 6);
        assert_string_equal(json_string_value(json_object_get(o->changes, "uid")), "jbond");
        assert_string_equal(json_string_value(json_object_get(o->changes, "mail")),
                            "james.bond@example.com");
        json_t *add = json_object_get(o->changes, "memberOf_add");
        assert_int_equal(json_array_size(add), 1);
        assert_string_equal(json_string_value(json_array_get(add, 0)),
                            "cn=agents,ou=groups,dc=example,dc=com");
        assert_true(json_is_array(json_object_get(o->changes, "memberOf_remove")));
        assert_int_equal(json_array_size(json_object_get(o->changes, "memberOf_remove")), 0);
        assert_true(json_is_object(o->resource));
        assert_string_equal(json_string_value(json_object_get(o->resource, "uid")), "jbond");
        assert_true(json_is_object(o->arguments));
        assert_string_equal(json_string_value(json_object_get(o->arguments, "WorkflowIdentifier")),
                            "Directory_User_StartPersonnel");

        /* The order outlives the page's document: it holds its own reference. */
        struct ca_order *kept = o;
        page.orders[0] = NULL;
        page.count = 0;
        order_page_clear(&page);
        assert_null(page.orders);
        assert_string_equal(json_string_value(json_object_get(kept->resource, "uid")), "jbond");
        order_free(kept);
}

static void test_key_computed_vector(void **state)
{
        struct ca_order *o = parse_order(example_no_id);
        assert_null(o->id);
        assert_string_equal(o->key, EXAMPLE_KEY);
        assert_null(o->invalid);
        order_free(o);

        char key[65];
        assert_int_equal(order_compute_key("3930001", "Deleted", NULL, NULL, key), 0);
        assert_string_equal(key, DELETED_NULL_KEY);
        assert_int_equal(order_compute_key("3930001", "Deleted", "", NULL, key), 0);
        assert_string_equal(key, DELETED_NULL_KEY);
        json_t *empty = json_object();
        assert_int_equal(order_compute_key("3930001", "Deleted", NULL, empty, key), 0);
        assert_string_equal(key, DELETED_EMPTY_KEY);
        json_decref(empty);

        /* Absent and null Changes are the same order. */
        o = parse_order("{\"AssignedResourceTypeId\":\"3930001\",\"ChangeType\":\"Deleted\"}");
        assert_string_equal(o->key, DELETED_NULL_KEY);
        order_free(o);
        o = parse_order("{\"AssignedResourceTypeId\":\"3930001\",\"ChangeType\":\"Deleted\","
                        "\"Changes\":null,\"WorkflowInstanceId\":null}");
        assert_string_equal(o->key, DELETED_NULL_KEY);
        assert_null(o->changes);
        assert_null(o->workflow_instance_id);
        order_free(o);
}

static void test_key_stable_and_separated(void **state)
{
        /* Same Changes, keys in another order and other whitespace: same key. */
        struct ca_order *o = parse_order(
            "{ \"Changes\" : {\"memberOf_remove\":[], \"sn\":\"Bond\", \"uid\":\"jbond\","
            "\"memberOf_add\":[\"cn=agents,ou=groups,dc=example,dc=com\"],"
            "\"mail\":\"james.bond@example.com\", \"givenName\":\"James\"},"
            "\"WorkflowInstanceId\":\"81\", \"ChangeType\":\"Added\","
            "\"AssignedResourceTypeId\":\"3930001\"}");
        assert_string_equal(o->key, EXAMPLE_KEY);
        order_free(o);

        /* Any one field changed: another key. */
        o = parse_order("{\"AssignedResourceTypeId\":\"3930001\",\"ChangeType\":\"Added\","
                        "\"WorkflowInstanceId\":\"81\",\"Changes\":{\"uid\":\"jbond2\"}}");
        assert_string_not_equal(o->key, EXAMPLE_KEY);
        order_free(o);

        /* The separator keeps fields apart. */
        char a[65], b[65], c[65];
        assert_int_equal(order_compute_key("12", "Added", "", NULL, a), 0);
        assert_int_equal(order_compute_key("1", "2Added", "", NULL, b), 0);
        assert_int_equal(order_compute_key("12", "Added", NULL, NULL, c), 0);
        assert_string_not_equal(a, b);
        assert_string_equal(a, c);
        assert_int_equal(strlen(a), 64);
        for (size_t i = 0; i < 64; i++)
                assert_true((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'));
}

static void test_key_from_id(void **state)
{
        struct ca_order *o = parse_order(
            "{\"Id\":\"order-7\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"Modified\"}");
        assert_string_equal(o->key, "order-7");
        assert_string_equal(o->id, "order-7");
        assert_int_equal(o->change, CA_CHANGE_MODIFIED);
        assert_null(o->invalid);
        order_free(o);

        /* An empty Id is no Id. */
        o = parse_order(
            "{\"Id\":\"\",\"AssignedResourceTypeId\":\"3930001\",\"ChangeType\":\"Deleted\"}");
        assert_null(o->id);
        assert_string_equal(o->key, DELETED_NULL_KEY);
        assert_int_equal(o->change, CA_CHANGE_DELETED);
        assert_null(o->invalid);
        order_free(o);

        /* The longest Id accepted fills the key exactly. */
        char text[512], id[CA_ORDER_KEY_MAX + 1];
        memset(id, 'k', CA_ORDER_KEY_MAX);
        id[CA_ORDER_KEY_MAX] = '\0';
        snprintf(text, sizeof(text),
                 "{\"Id\":\"%s\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"Added\"}", id);
        o = parse_order(text);
        assert_string_equal(o->key, id);
        assert_null(o->invalid);
        order_free(o);
}

struct invalid_case {
        const char *json;
        const char *message;
};

#define BASE "\"AssignedResourceTypeId\":\"3930001\",\"ChangeType\":\"Added\""

static void test_invalid_messages(void **state)
{
        static const struct invalid_case cases[] = {
            {"{\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"Renamed\"}",
             "unknown ChangeType \"Renamed\""},
            {"{\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"added\"}",
             "unknown ChangeType \"added\""},
            {"{\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"Ad\\n\\\"ded\\u00e9\"}",
             "unknown ChangeType \"Ad\\x0a\\\"ded\\xc3\\xa9\""},
            {"{\"AssignedResourceTypeId\":\"1\",\"ChangeType\":"
             "\"0123456789012345678901234567890123456789012345678901234567890123456789\"}",
             "unknown ChangeType "
             "\"0123456789012345678901234567890123456789012345678901234567890123...\""},
            {"{\"AssignedResourceTypeId\":\"1\"}", "ChangeType: required"},
            {"{\"AssignedResourceTypeId\":\"1\",\"ChangeType\":null}", "ChangeType: required"},
            {"{\"AssignedResourceTypeId\":\"1\",\"ChangeType\":3}",
             "ChangeType: expected a string, got an integer"},
            {"{\"Id\":5," BASE "}", "Id: expected a string, got an integer"},
            {"{\"Id\":\"a\\u00e9\\t\"," BASE "}",
             "Id: \"a\\xc3\\xa9\\x09\" has characters other than printable ASCII"},
            {"{\"Id\":\"x\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"Added\","
             "\"WorkflowInstanceId\":81}",
             "WorkflowInstanceId: expected a string, got an integer"},
            {"{" BASE ",\"Owner\":\"21511\"}", "Owner: expected an object, got a string"},
            {"{" BASE ",\"Owner\":{\"Id\":true}}",
             "Owner.Id: expected a string or an integer, got a boolean"},
            {"{" BASE ",\"ResourceType\":[]}", "ResourceType: expected an object, got an array"},
            {"{" BASE ",\"ResourceType\":{\"Id\":{}}}",
             "ResourceType.Id: expected a string or an integer, got an object"},
            {"{" BASE ",\"ResourceType\":{\"Identifier\":5}}",
             "ResourceType.Identifier: expected a string, got an integer"},
            {"{" BASE ",\"ResourceType\":{\"SourceEntityType\":[]}}",
             "ResourceType.SourceEntityType: expected an object, got an array"},
            {"{" BASE ",\"ResourceType\":{\"SourceEntityType\":{\"Id\":1.5}}}",
             "ResourceType.SourceEntityType.Id: expected a string or an integer, got a real "
             "number"},
            {"{" BASE ",\"Changes\":[]}", "Changes: expected an object, got an array"},
            {"{" BASE ",\"Changes\":\"uid=x\"}", "Changes: expected an object, got a string"},
            {"{" BASE ",\"Changes\":{\"uid\":\"x\",\"mail\":{}}}",
             "Changes.mail: expected a string, null or an array of strings, got an object"},
            {"{" BASE ",\"Changes\":{\"mail\":5}}",
             "Changes.mail: expected a string, null or an array of strings, got an integer"},
            {"{" BASE ",\"Changes\":{\"mail\":false}}",
             "Changes.mail: expected a string, null or an array of strings, got a boolean"},
            {"{" BASE ",\"Changes\":{\"memberOf_add\":[\"a\",2]}}",
             "Changes.memberOf_add[1]: expected a string, got an integer"},
            {"{" BASE ",\"Changes\":{\"memberOf_add\":[null]}}",
             "Changes.memberOf_add[0]: expected a string, got null"},
            {"{" BASE ",\"Changes\":{\"a\\u0001\\\"b\":{}}}",
             "Changes.a\\x01\\\"b: expected a string, null or an array of strings, got an object"},
            {"{" BASE ",\"Resource\":\"x\"}", "Resource: expected an object, got a string"},
            {"{" BASE ",\"Arguments\":[]}", "Arguments: expected an object, got an array"},
            {"{" BASE ",\"Arguments\":{\"a\":\"x\",\"b\":1}}",
             "Arguments.b: expected a string, got an integer"},
            {"{" BASE ",\"Arguments\":{\"a\":null}}", "Arguments.a: expected a string, got null"},
            /* The first problem is the one reported. */
            {"{\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"X\",\"Owner\":1}",
             "unknown ChangeType \"X\""},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct ca_order *o = parse_order(cases[i].json);
                if (!o->invalid || strcmp(o->invalid, cases[i].message) != 0)
                        fail_msg("case %zu: %s\n  expected: %s\n  got:      %s", i, cases[i].json,
                                 cases[i].message, o->invalid ? o->invalid : "(valid)");
                assert_int_equal(strlen(o->key) > 0, 1);
                order_free(o);
        }
}

static void test_invalid_but_identified(void **state)
{
        /* A bad Id: the order is still answerable under its computed key. */
        char text[1024], id[CA_ORDER_KEY_MAX + 2];
        memset(id, 'k', CA_ORDER_KEY_MAX + 1);
        id[CA_ORDER_KEY_MAX + 1] = '\0';
        snprintf(
            text, sizeof(text),
            "{\"Id\":\"%s\",\"AssignedResourceTypeId\":\"3930001\",\"ChangeType\":\"Deleted\"}",
            id);
        struct ca_order *o = parse_order(text);
        assert_string_equal(o->invalid, "Id: longer than 256 characters");
        assert_null(o->id);
        assert_string_equal(o->key, DELETED_NULL_KEY);
        order_free(o);

        /* An Id without a usable AssignedResourceTypeId: answered under the Id. */
        o = parse_order("{\"Id\":\"o-1\",\"ChangeType\":\"Added\"}");
        assert_string_equal(o->invalid, "AssignedResourceTypeId: required");
        assert_string_equal(o->key, "o-1");
        assert_string_equal(o->assignment_id, "");
        order_free(o);
        o = parse_order(
            "{\"Id\":\"o-1\",\"AssignedResourceTypeId\":\"\",\"ChangeType\":\"Added\"}");
        assert_string_equal(o->invalid, "AssignedResourceTypeId: empty");
        order_free(o);
        o = parse_order("{\"Id\":\"o-1\",\"AssignedResourceTypeId\":[],\"ChangeType\":\"Added\"}");
        assert_string_equal(o->invalid, "AssignedResourceTypeId: expected a string, got an array");
        order_free(o);

        /* A numeric AssignedResourceTypeId is wrong, but echoes back in decimal. */
        o = parse_order("{\"AssignedResourceTypeId\":3930001,\"ChangeType\":\"Deleted\"}");
        assert_string_equal(o->invalid,
                            "AssignedResourceTypeId: expected a string, got an integer");
        assert_string_equal(o->assignment_id, "3930001");
        assert_string_equal(o->key, DELETED_NULL_KEY);
        order_free(o);

        /* Unknown ChangeType: kept as sent, so the result can echo it. */
        o = parse_order(
            "{\"Id\":\"o-2\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"Renamed\"}");
        assert_int_equal(o->change, CA_CHANGE_UNKNOWN);
        assert_string_equal(o->change_text, "Renamed");
        order_free(o);
        o = parse_order("{\"Id\":\"o-3\",\"AssignedResourceTypeId\":\"1\"}");
        assert_int_equal(o->change, CA_CHANGE_UNKNOWN);
        assert_string_equal(o->change_text, "");
        order_free(o);
}

static void test_integer_ids_and_nulls(void **state)
{
        struct ca_order *o =
            parse_order("{" BASE ",\"Owner\":{\"Id\":21511},\"ResourceType\":{\"Id\":-41,"
                        "\"Identifier\":\"LDAP_User\",\"SourceEntityType\":{\"Id\":51}}}");
        assert_null(o->invalid);
        assert_string_equal(o->owner_id, "21511");
        assert_string_equal(o->owner_type, "51");
        assert_string_equal(o->resource_type, "LDAP_User");
        order_free(o);

        o = parse_order(
            "{" BASE ",\"Id\":null,\"WorkflowInstanceId\":null,\"Owner\":null,"
            "\"ResourceType\":null,\"Changes\":null,\"Resource\":null,\"Arguments\":null,"
            "\"Unknown\":{\"deep\":[1,2,{\"x\":true}]}}");
        assert_null(o->invalid);
        assert_null(o->id);
        assert_null(o->workflow_instance_id);
        assert_null(o->owner_id);
        assert_null(o->owner_type);
        assert_null(o->resource_type);
        assert_null(o->changes);
        assert_null(o->resource);
        assert_null(o->arguments);
        order_free(o);

        o = parse_order("{" BASE ",\"Owner\":{},\"ResourceType\":{\"SourceEntityType\":{}},"
                        "\"Changes\":{\"a\":null,\"b\":[],\"c\":\"\"},\"Resource\":{\"n\":1}}");
        assert_null(o->invalid);
        assert_null(o->owner_id);
        assert_null(o->owner_type);
        assert_int_equal(json_object_size(o->changes), 3);
        order_free(o);
}

static void test_order_from_json_direct(void **state)
{
        struct ca_order *o = (struct ca_order *)1;
        struct ca_error err = {0};
        json_t *arr = json_array();
        assert_int_equal(order_from_json(arr, &o, &err), -EBADMSG);
        assert_null(o);
        assert_string_equal(err.msg, "order: expected an object, got an array");
        json_decref(arr);
        assert_int_equal(order_from_json(NULL, &o, &err), -EBADMSG);

        json_t *obj = json_pack("{s:s, s:s}", "AssignedResourceTypeId", "1", "ChangeType", "Added");
        assert_int_equal(order_from_json(obj, &o, NULL), 0);
        assert_int_equal(obj->refcount, 2);
        assert_ptr_equal(o->json, obj);
        order_free(o);
        assert_int_equal(obj->refcount, 1);
        json_decref(obj);

        obj = json_pack("{s:s}", "ChangeType", "Added");
        assert_int_equal(order_from_json(obj, &o, &err), -EBADMSG);
        assert_string_equal(err.msg,
                            "order cannot be identified: AssignedResourceTypeId: required");
        json_decref(obj);

        /* A string with a NUL cannot come from the parser, but may from other code. */
        obj = json_pack("{s:s#, s:s}", "AssignedResourceTypeId", "1\0002", (size_t)3, "ChangeType",
                        "Added");
        assert_int_equal(order_from_json(obj, &o, &err), -EBADMSG);
        json_decref(obj);

        order_free(NULL);
        order_page_clear(NULL);
        assert_string_equal(change_type_name(CA_CHANGE_ADDED), "Added");
        assert_string_equal(change_type_name(CA_CHANGE_MODIFIED), "Modified");
        assert_string_equal(change_type_name(CA_CHANGE_DELETED), "Deleted");
        assert_string_equal(change_type_name(CA_CHANGE_UNKNOWN), "Unknown");
}

/* The journal stores o->json as text and rebuilds the order from it: same identity. */
static void test_rebuild_from_stored_json(void **state)
{
        const char *sources[] = {example_no_id,
                                 "{\"Id\":\"o-5\",\"AssignedResourceTypeId\":\"9\","
                                 "\"ChangeType\":\"Modified\",\"Changes\":{\"b\":[\"\\u00e9\"],"
                                 "\"a\":null,\"c\":\"x\\ny\"}}"};
        for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
                struct ca_order *o = parse_order(sources[i]);
                char *stored = json_dumps(o->json, JSON_COMPACT);
                assert_non_null(stored);
                struct ca_order *again = parse_order(stored);
                assert_string_equal(again->key, o->key);
                assert_string_equal(again->assignment_id, o->assignment_id);
                assert_int_equal(again->change, o->change);
                assert_true(json_equal(again->changes, o->changes));
                assert_null(again->invalid);
                free(stored);
                order_free(again);
                order_free(o);
        }
}

static void test_skipped_entries(void **state)
{
        char longid[CA_ORDER_KEY_MAX + 2];
        memset(longid, 'x', sizeof(longid) - 1);
        longid[sizeof(longid) - 1] = '\0';
        char body[2048];
        snprintf(body, sizeof(body),
                 "{\"ProvisioningOrdersList\":[1,\"x\",null,[],true,{},"
                 "{\"ChangeType\":\"Added\"},"
                 "{\"Id\":5,\"ChangeType\":\"Added\"},"
                 "{\"AssignedResourceTypeId\":true,\"ChangeType\":\"Added\"},"
                 "{\"AssignedResourceTypeId\":\"\",\"ChangeType\":\"Added\"},"
                 "{\"Id\":\"%s\",\"ChangeType\":\"Added\"},"
                 "{\"Id\":\"\\u0001\"}],\"ContinuationToken\":\"next\"}",
                 longid);
        struct ca_order_page page;
        struct ca_error err;
        assert_int_equal(parse_page(body, &page, &err), 0);
        assert_int_equal(page.count, 0);
        assert_int_equal(page.skipped, 12);
        assert_string_equal(page.continuation_token, "next");
        order_page_clear(&page);
}

static void test_good_next_to_bad(void **state)
{
        const char *body =
            "{\"ContinuationToken\":\"t-2\",\"ProvisioningOrdersList\":["
            "42,"
            "{\"Id\":\"bad-1\",\"AssignedResourceTypeId\":\"1\",\"ChangeType\":\"Exploded\"},"
            "{\"Id\":\"good-1\",\"AssignedResourceTypeId\":\"2\",\"ChangeType\":\"Deleted\","
            "\"Resource\":{\"uid\":\"x\"}},"
            "{\"ChangeType\":\"Added\",\"Changes\":{\"uid\":{}}},"
            "{\"Id\":\"bad-2\",\"AssignedResourceTypeId\":\"3\",\"ChangeType\":\"Added\","
            "\"Changes\":{\"uid\":{}}}"
            "]}";
        struct ca_order_page page;
        struct ca_error err;
        assert_int_equal(parse_page(body, &page, &err), 0);
        assert_int_equal(page.count, 3);
        assert_int_equal(page.skipped, 2);
        assert_string_equal(page.continuation_token, "t-2");
        assert_string_equal(page.orders[0]->key, "bad-1");
        assert_string_equal(page.orders[0]->invalid, "unknown ChangeType \"Exploded\"");
        assert_string_equal(page.orders[1]->key, "good-1");
        assert_null(page.orders[1]->invalid);
        assert_int_equal(page.orders[1]->change, CA_CHANGE_DELETED);
        assert_string_equal(page.orders[2]->key, "bad-2");
        assert_string_equal(
            page.orders[2]->invalid,
            "Changes.uid: expected a string, null or an array of strings, got an object");
        order_page_clear(&page);
        assert_int_equal(page.count, 0);
        assert_null(page.continuation_token);
}

struct page_error_case {
        const char *body;
        const char *message;
};

static void test_page_top_level(void **state)
{
        struct ca_order_page page;
        struct ca_error err;

        /* Empty means nothing to do. */
        assert_int_equal(order_page_parse(NULL, 0, &page, &err), 0);
        assert_int_equal(page.count, 0);
        assert_int_equal(order_page_parse("", 0, &page, &err), 0);
        assert_int_equal(parse_page(" \r\n\t ", &page, &err), 0);
        assert_int_equal(page.count, 0);
        assert_null(page.orders);
        assert_int_equal(parse_page("{}", &page, &err), 0);
        assert_int_equal(page.count, 0);
        assert_null(page.continuation_token);
        assert_int_equal(
            parse_page("{\"ProvisioningOrdersList\":null,\"ContinuationToken\":\"abc\"}", &page,
                       &err),
            0);
        assert_string_equal(page.continuation_token, "abc");
        order_page_clear(&page);
        assert_int_equal(
            parse_page("{\"ProvisioningOrdersList\":[],\"ContinuationToken\":\"\"}", &page, &err),
            0);
        assert_string_equal(page.continuation_token, "");
        order_page_clear(&page);

        /* Only len bytes are read: no NUL terminator needed. */
        assert_int_equal(order_page_parse("{}garbage", 2, &page, &err), 0);

        static const struct page_error_case cases[] = {
            {"[]", "ProvisioningData: expected an object, got an array"},
            {"\"x\"", "ProvisioningData: expected an object, got a string"},
            {"null", "ProvisioningData: expected an object, got null"},
            {"5", "ProvisioningData: expected an object, got an integer"},
            {"{\"ProvisioningOrdersList\":{}}",
             "ProvisioningData: ProvisioningOrdersList: expected an array, got an object"},
            {"{\"ProvisioningOrdersList\":\"x\"}",
             "ProvisioningData: ProvisioningOrdersList: expected an array, got a string"},
            {"{\"ContinuationToken\":5}",
             "ProvisioningData: ContinuationToken: expected a string or null, got an integer"},
            {"{\"ContinuationToken\":[]}",
             "ProvisioningData: ContinuationToken: expected a string or null, got an array"},
            {"{", NULL},
            {"{} x", NULL},
            {"{\"a\":\"\\u0000\"}", NULL},
            {"{\"ProvisioningOrdersList\":[],\"ProvisioningOrdersList\":[]}", NULL},
            {"\xff", NULL},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                page.count = 99;
                if (parse_page(cases[i].body, &page, &err) != -EBADMSG)
                        fail_msg("case %zu (%s) was accepted", i, cases[i].body);
                assert_int_equal(page.count, 0);
                assert_null(page.orders);
                assert_int_equal(err.code, -EBADMSG);
                if (cases[i].message)
                        assert_string_equal(err.msg, cases[i].message);
                else if (strncmp(err.msg, "ProvisioningData: invalid JSON at line ", 39) != 0)
                        fail_msg("case %zu: %s", i, err.msg);
        }
        /* jansson's message quotes the body: it comes out printable. */
        assert_int_equal(parse_page("{\"a\":\x01}", &page, &err), -EBADMSG);
        for (const char *p = err.msg; *p; p++)
                assert_true(*p >= 0x20 && *p <= 0x7e);
}

static char *nested(size_t depth, const char *open, const char *close, const char *inner)
{
        size_t n = strlen(open) * depth + strlen(close) * depth + strlen(inner) + 1;
        char *s = malloc(n);
        assert_non_null(s);
        char *p = s;
        for (size_t i = 0; i < depth; i++)
                p += sprintf(p, "%s", open);
        p += sprintf(p, "%s", inner);
        for (size_t i = 0; i < depth; i++)
                p += sprintf(p, "%s", close);
        return s;
}

static void test_deep_nesting(void **state)
{
        struct ca_order_page page;
        struct ca_error err;

        /* 64 levels in all (the page object plus 63 arrays): accepted. */
        char *inner = nested(63, "[", "]", "");
        char *body = malloc(strlen(inner) + 16);
        sprintf(body, "{\"x\":%s}", inner);
        assert_int_equal(parse_page(body, &page, &err), 0);
        free(inner);
        free(body);

        /* 65: refused before jansson sees it. */
        inner = nested(64, "[", "]", "");
        body = malloc(strlen(inner) + 16);
        sprintf(body, "{\"x\":%s}", inner);
        assert_int_equal(parse_page(body, &page, &err), -EBADMSG);
        assert_string_equal(err.msg, "ProvisioningData: nested deeper than 64 levels");
        free(inner);
        free(body);

        /* Deep inside an order, and far beyond jansson's own limit. */
        inner = nested(100000, "{\"a\":", "}", "1");
        body = malloc(strlen(inner) + 128);
        sprintf(body, "{\"ProvisioningOrdersList\":[{\"Id\":\"1\",\"Changes\":%s}]}", inner);
        assert_int_equal(parse_page(body, &page, &err), -EBADMSG);
        assert_string_equal(err.msg, "ProvisioningData: nested deeper than 64 levels");
        free(inner);
        free(body);

        /* Brackets inside strings, escaped quotes included, are text, not nesting. */
        inner = nested(200, "[{", "}]", "\\\"");
        body = malloc(strlen(inner) + 128);
        sprintf(body, "{\"ContinuationToken\":\"\\\"%s\\\\\",\"x\":[[]]}", inner);
        assert_int_equal(parse_page(body, &page, &err), 0);
        assert_non_null(page.continuation_token);
        assert_int_equal(page.continuation_token[0], '"');
        order_page_clear(&page);
        free(inner);
        free(body);
}

/* Each order's text is its slice of the page, whitespace between tokens dropped: the same
 * JSON value as the order's tree, with strings (brackets, quotes, escapes inside them) as
 * the server wrote them; an invalid entry next to it takes no slice away. */
static void test_order_text_is_page_slice(void **state)
{
        (void)state;
        const char *body =
            "{ \"ContinuationToken\" : \"t [ { \\\" \" ,\n"
            "  \"Other\": {\"ProvisioningOrdersList\": [1, 2]},\n"
            "  \"ProvisioningOrdersList\" : [\n"
            "    { \"Id\" : \"o-1\", \"AssignedResourceTypeId\" : \"9\",\n"
            "      \"ChangeType\" : \"Added\",\n"
            "      \"Changes\" : { \"cn\" : \"a ] } , \\\" \\\\ \\u00e9 \\/ x\" ,\n"
            "                    \"n\" : [ 1.50 , -2e3 , true , null , [ ] , { } ] } } ,\n"
            "    42 ,\n"
            "    {\"Id\":\"o-2\",\"AssignedResourceTypeId\":\"9\",\"ChangeType\":\"Deleted\"}\n"
            "  ]\n"
            "}";
        struct ca_order_page page;
        struct ca_error err;
        assert_int_equal(parse_page(body, &page, &err), 0);
        assert_int_equal(page.count, 2);
        assert_int_equal(page.skipped, 1);
        assert_string_equal(order_json_text(page.orders[0]),
                            "{\"Id\":\"o-1\",\"AssignedResourceTypeId\":\"9\","
                            "\"ChangeType\":\"Added\",\"Changes\":{\"cn\":\"a ] } , \\\" \\\\ "
                            "\\u00e9 \\/ x\",\"n\":[1.50,-2e3,true,null,[],{}]}}");
        assert_string_equal(
            order_json_text(page.orders[1]),
            "{\"Id\":\"o-2\",\"AssignedResourceTypeId\":\"9\",\"ChangeType\":\"Deleted\"}");
        for (size_t i = 0; i < page.count; i++) {
                json_t *back = json_loads(order_json_text(page.orders[i]), 0, NULL);
                assert_non_null(back);
                assert_true(json_equal(back, page.orders[i]->json));
                json_decref(back);
        }
        order_page_clear(&page);

        /* A list the scan does not find as written (its key escaped): the text is the
         * dump of the tree, as before. */
        assert_int_equal(parse_page("{\"Provisioning\\u004frdersList\":[{\"Id\":\"o-3\","
                                    "\"AssignedResourceTypeId\":\"9\",\"ChangeType\": "
                                    "\"Added\",\"Changes\":{\"k\":\"\\u00e9\"}}]}",
                                    &page, &err),
                         0);
        assert_int_equal(page.count, 1);
        assert_string_equal(order_json_text(page.orders[0]),
                            "{\"Id\":\"o-3\",\"AssignedResourceTypeId\":\"9\",\"ChangeType\":"
                            "\"Added\",\"Changes\":{\"k\":\"\xc3\xa9\"}}");
        order_page_clear(&page);

        /* jansson reads past a NUL byte, the scan would not: the dump again. */
        static const char with_nul[] = "{\"ProvisioningOrdersList\":[{\"Id\":\"o-4\","
                                       "\"AssignedResourceTypeId\":\"9\",\"ChangeType\":"
                                       "\"Added\",\"Owner\":{\"Id\": 5\0 }}]}";
        ca_error_clear(&err);
        assert_int_equal(order_page_parse(with_nul, sizeof(with_nul) - 1, &page, &err), 0);
        assert_int_equal(page.count, 1);
        char *dump = json_dumps(page.orders[0]->json, JSON_COMPACT | JSON_ENCODE_ANY);
        assert_string_equal(order_json_text(page.orders[0]), dump);
        free(dump);
        order_page_clear(&page);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_example_order_fields),
            cmocka_unit_test(test_key_computed_vector),
            cmocka_unit_test(test_key_stable_and_separated),
            cmocka_unit_test(test_key_from_id),
            cmocka_unit_test(test_invalid_messages),
            cmocka_unit_test(test_invalid_but_identified),
            cmocka_unit_test(test_integer_ids_and_nulls),
            cmocka_unit_test(test_order_from_json_direct),
            cmocka_unit_test(test_rebuild_from_stored_json),
            cmocka_unit_test(test_order_text_is_page_slice),
            cmocka_unit_test(test_skipped_entries),
            cmocka_unit_test(test_good_next_to_bad),
            cmocka_unit_test(test_page_top_level),
            cmocka_unit_test(test_deep_nesting),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
