/* SPDX-License-Identifier: Apache-2.0 */
#include "order_internal.h"

#include <stdio.h>
#include <string.h>

int order_json_blank(const char *body, size_t len)
{
        for (size_t i = 0; i < len; i++) {
                char c = body[i];
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
                        return 0;
        }
        return 1;
}

/* Counts bracket nesting outside strings. It does not validate anything (the parser does
 * that next); it only has to be right about depth for every body the parser would
 * accept, and a string's escapes are the one thing that could fool it. */
static int json_depth_ok(const char *body, size_t len, size_t max_depth)
{
        size_t depth = 0;
        int in_string = 0;
        for (size_t i = 0; i < len; i++) {
                char c = body[i];
                if (in_string) {
                        if (c == '\\')
                                i++; /* the escaped character cannot end the string */
                        else if (c == '"')
                                in_string = 0;
                        continue;
                }
                switch (c) {
                case '"':
                        in_string = 1;
                        break;
                case '[':
                case '{':
                        if (++depth > max_depth)
                                return 0;
                        break;
                case ']':
                case '}':
                        if (depth > 0)
                                depth--;
                        break;
                default:
                        break;
                }
        }
        return 1;
}

int order_json_load(const char *body, size_t len, const char *what, json_t **out,
                    struct ca_error *err)
{
        *out = NULL;
        if (!body || len == 0)
                return ca_error_set(err, -EBADMSG, "%s: empty body", what);
        if (!json_depth_ok(body, len, CA_JSON_MAX_DEPTH))
                return ca_error_set(err, -EBADMSG, "%s: nested deeper than %d levels", what,
                                    CA_JSON_MAX_DEPTH);
        json_error_t jerr;
        json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!root) {
                if (json_error_code(&jerr) == json_error_out_of_memory)
                        return ca_error_set(err, -ENOMEM, "%s: out of memory", what);
                /* jansson quotes the offending token from the body: keep it printable. */
                char text[CA_QUOTE_BUF];
                order_text_quote(text, sizeof(text), jerr.text,
                                 strnlen(jerr.text, sizeof(jerr.text)));
                return ca_error_set(err, -EBADMSG, "%s: invalid JSON at line %d, column %d: %s",
                                    what, jerr.line, jerr.column, text);
        }
        *out = root;
        return 0;
}

const char *order_json_kind(const json_t *v)
{
        switch (v ? json_typeof(v) : JSON_NULL) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
                return "an integer";
        case JSON_REAL:
                return "a real number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
        default:
                return "null";
        }
}

void order_text_quote(char *dst, size_t size, const char *src, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;
        if (size == 0)
                return;
        size_t shown = n > CA_QUOTE_MAX ? CA_QUOTE_MAX : n;
        for (size_t i = 0; i < shown; i++) {
                unsigned char c = (unsigned char)src[i];
                char piece[5];
                size_t pn;
                if (c == '"' || c == '\\') {
                        piece[0] = '\\';
                        piece[1] = (char)c;
                        pn = 2;
                } else if (c >= 0x20 && c <= 0x7e) {
                        piece[0] = (char)c;
                        pn = 1;
                } else {
                        piece[0] = '\\';
                        piece[1] = 'x';
                        piece[2] = hex[c >> 4];
                        piece[3] = hex[c & 0xf];
                        pn = 4;
                }
                if (o + pn + 1 > size)
                        break;
                memcpy(dst + o, piece, pn);
                o += pn;
        }
        if (shown < n && o + 4 <= size) {
                memcpy(dst + o, "...", 3);
                o += 3;
        }
        dst[o] = '\0';
}
