/* SPDX-License-Identifier: Apache-2.0 */
/* Loading the configuration happens in three passes over an intermediate form of raw
 * sections (key, value, line): the file (this file's own INI reader), then the
 * environment on top, then the keyword tables that convert, bound and check every value
 * into struct ca_config. Every pass records problems and goes on, so that one run shows the
 * operator all of them; the config is handed out only when there were none.
 *
 * Values are never quoted in a diagnostic: a misplaced secret must not reach a log, and
 * FILE:LINE already points at the value. */
#include "config.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_keys.h"
#include "log.h"

#define CA_CONFIG_MAX_FILE     (1024 * 1024) /* bytes of one configuration file */
#define CA_CONFIG_MAX_LINE     8192          /* characters of one line */
#define CA_CONFIG_MAX_DIAGS    100           /* problems listed; the rest are counted */
#define CA_CONFIG_DIAG_LEN     1024          /* characters of one problem */
#define CA_CONFIG_MAX_NAME     128           /* a section's NAME or IDENTIFIER */
#define CA_CONFIG_MAX_SECTIONS 4096
#define CA_CONFIG_MAX_KEYS     1024 /* keys of one section */
#define CA_CONFIG_MAX_VALUE    (64 * 1024)
#define CA_CONFIG_ENV_MAX      512 /* length of an environment variable's name */
#define CA_URL_HOST_MAX        256

#define ENV_PREFIX         "CONNECTOR_AGENT_"
#define ENV_CONNECTORS     "CONNECTOR_AGENT_CONNECTORS"
#define ENV_RESOURCE_TYPES "CONNECTOR_AGENT_RESOURCE_TYPES"
#define ENV_SECRET         "CONNECTOR_AGENT_SERVER_CLIENT_SECRET"

enum sec_kind {
        SEC_AGENT,
        SEC_SERVER,
        SEC_CONNECTOR,
        SEC_RESOURCE_TYPE,
};

struct raw_entry {
        char *key;
        char *value;
        unsigned line; /* 0 when the value came from the environment */
        char *env;     /* the variable it came from, or NULL */
};

struct raw_section {
        enum sec_kind kind;
        char *name;  /* NAME / IDENTIFIER; NULL for [agent] and [server] */
        char *title; /* what goes between [ ]: "connector ldap-main" */
        unsigned line;
        const char *declared_by; /* the variable that declared it, when not the file */
        char *env_prefix;        /* CONNECTOR_AGENT_<TITLE>_ */
        struct raw_entry *entries;
        size_t count;
};

struct loader {
        const char *path; /* NULL: no file was read */
        char *const *envp;
        struct ca_config_diag *diag;
        size_t problems;
        bool oom;

        struct raw_section **sections;
        size_t nsec;

        /* The file reader's state. */
        unsigned lineno;
        struct raw_section *cur;      /* NULL outside a (valid) section */
        bool bad_section;             /* keys under a refused header are not reported again */
        bool cont_ok;                 /* an indented line now continues the previous key */
        struct raw_section *last_sec; /* where that key went, NULL when it was refused */
        size_t last_idx;
};

/* ---- diagnostics ---- */

static void diag_vadd(struct loader *ld, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void diag_vadd(struct loader *ld, const char *fmt, va_list ap)
{
        char line[CA_CONFIG_DIAG_LEN];
        ld->problems++;
        if (!ld->diag || ld->problems > CA_CONFIG_MAX_DIAGS + 1)
                return;
        if (ld->problems == CA_CONFIG_MAX_DIAGS + 1)
                snprintf(line, sizeof(line), "more problems not shown: fix the ones above first");
        else
                vsnprintf(line, sizeof(line), fmt, ap);
        char **lines = realloc(ld->diag->lines, (ld->diag->count + 1) * sizeof(*lines));
        if (!lines) {
                ld->oom = true;
                return;
        }
        ld->diag->lines = lines;
        lines[ld->diag->count] = strdup(line);
        if (!lines[ld->diag->count]) {
                ld->oom = true;
                return;
        }
        ld->diag->count++;
}

static void diag_add(struct loader *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void diag_add(struct loader *ld, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        diag_vadd(ld, fmt, ap);
        va_end(ap);
}

/* A problem with one value: "FILE:LINE: [section] key: ..." or "environment VAR: ...". */
static void diag_entry(struct loader *ld, const struct raw_section *sec, const struct raw_entry *e,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void diag_entry(struct loader *ld, const struct raw_section *sec, const struct raw_entry *e,
                       const char *fmt, ...)
{
        char msg[CA_CONFIG_DIAG_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (e->env)
                diag_add(ld, "environment %s: %s", e->env, msg);
        else
                diag_add(ld, "%s:%u: [%s] %s: %s", ld->path, e->line, sec->title, e->key, msg);
}

/* A problem with a section or a key it lacks (key may be NULL), placed where the
 * section was declared. */
static void diag_section(struct loader *ld, const struct raw_section *sec, const char *key,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void diag_section(struct loader *ld, const struct raw_section *sec, const char *key,
                         const char *fmt, ...)
{
        char msg[CA_CONFIG_DIAG_LEN], what[CA_CONFIG_DIAG_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(what, sizeof(what), "[%s]%s%s", sec->title, key ? " " : "", key ? key : "");
        if (sec->line)
                diag_add(ld, "%s:%u: %s: %s", ld->path, sec->line, what, msg);
        else if (sec->declared_by)
                diag_add(ld, "environment %s: %s: %s", sec->declared_by, what, msg);
        else if (ld->path)
                diag_add(ld, "%s: %s: %s", ld->path, what, msg);
        else
                diag_add(ld, "environment: %s: %s", what, msg);
}

/* ---- small helpers ---- */

static char *dup_str(struct loader *ld, const char *s)
{
        char *d = strdup(s);
        if (!d)
                ld->oom = true;
        return d;
}

static void wipe_free(char *s)
{
        /* Raw values may hold a back-end password or the client secret. */
        if (s)
                explicit_bzero(s, strlen(s));
        free(s);
}

static bool is_ascii_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char ascii_upper(char c)
{
        return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static char ascii_lower(char c)
{
        return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Connector names go into URL paths and back-end names into file names: keep them to a
 * character set that needs no escaping anywhere. */
static bool name_ok(const char *s, bool url_safe)
{
        size_t n = strlen(s);
        if (n == 0 || n > CA_CONFIG_MAX_NAME)
                return false;
        for (const char *p = s; *p; p++) {
                if (is_ascii_alnum(*p) || *p == '-' || *p == '_' || *p == '.')
                        continue;
                if (!url_safe && (unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f &&
                    !strchr("[]\";#=,", *p))
                        continue;
                return false;
        }
        return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static bool parse_bool(const char *s, int *out)
{
        static const char *const yes[] = {"yes", "true", "on", "1"};
        static const char *const no[] = {"no", "false", "off", "0"};
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *out = 1;
                        return true;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *out = 0;
                        return true;
                }
        }
        return false;
}

/* ---- raw sections ---- */

static const char *kind_word(enum sec_kind k)
{
        switch (k) {
        case SEC_AGENT:
                return "agent";
        case SEC_SERVER:
                return "server";
        case SEC_CONNECTOR:
                return "connector";
        default:
                return "resource-type";
        }
}

static struct raw_section *section_find(struct loader *ld, enum sec_kind kind, const char *name)
{
        for (size_t i = 0; i < ld->nsec; i++) {
                struct raw_section *s = ld->sections[i];
                if (s->kind == kind &&
                    ((!s->name && !name) || (s->name && name && !strcmp(s->name, name))))
                        return s;
        }
        return NULL;
}

static struct raw_section *section_new(struct loader *ld, enum sec_kind kind, const char *name,
                                       unsigned line, const char *declared_by)
{
        char title[CA_CONFIG_MAX_NAME + 32];
        char env[CA_CONFIG_ENV_MAX];
        struct raw_section **v, *s;

        if (ld->nsec >= CA_CONFIG_MAX_SECTIONS) {
                diag_add(ld, "%s:%u: more than %d sections", ld->path ? ld->path : "environment",
                         line, CA_CONFIG_MAX_SECTIONS);
                return NULL;
        }
        snprintf(title, sizeof(title), "%s%s%s", kind_word(kind), name ? " " : "",
                 name ? name : "");
        if (config_env_name(title, NULL, env, sizeof(env)) < 0) {
                ld->oom = true; /* unreachable: names are bounded */
                return NULL;
        }
        v = realloc(ld->sections, (ld->nsec + 1) * sizeof(*v));
        if (!v) {
                ld->oom = true;
                return NULL;
        }
        ld->sections = v;
        s = calloc(1, sizeof(*s));
        if (!s) {
                ld->oom = true;
                return NULL;
        }
        s->kind = kind;
        s->line = line;
        s->declared_by = declared_by;
        s->name = name ? dup_str(ld, name) : NULL;
        s->title = dup_str(ld, title);
        s->env_prefix = dup_str(ld, env);
        v[ld->nsec++] = s;
        return s;
}

static void section_free(struct raw_section *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->count; i++) {
                free(s->entries[i].key);
                wipe_free(s->entries[i].value);
                free(s->entries[i].env);
        }
        free(s->entries);
        free(s->name);
        free(s->title);
        free(s->env_prefix);
        free(s);
}

static struct raw_entry *entry_find(const struct raw_section *s, const char *key)
{
        for (size_t i = 0; i < s->count; i++) {
                if (strcmp(s->entries[i].key, key) == 0)
                        return &s->entries[i];
        }
        return NULL;
}

static struct raw_entry *entry_add(struct loader *ld, struct raw_section *s, const char *key,
                                   const char *value, unsigned line, const char *env)
{
        struct raw_entry *v, *e;
        if (s->count >= CA_CONFIG_MAX_KEYS) {
                diag_section(ld, s, NULL, "more than %d keys", CA_CONFIG_MAX_KEYS);
                return NULL;
        }
        v = realloc(s->entries, (s->count + 1) * sizeof(*v));
        if (!v) {
                ld->oom = true;
                return NULL;
        }
        s->entries = v;
        e = &v[s->count++];
        e->key = dup_str(ld, key);
        e->value = dup_str(ld, value);
        e->line = line;
        e->env = env ? dup_str(ld, env) : NULL;
        if (!e->key || !e->value) {
                s->count--;
                free(e->key);
                wipe_free(e->value);
                free(e->env);
                return NULL;
        }
        return e;
}

/* An environment value replaces the file's. */
static void entry_set_env(struct loader *ld, struct raw_section *s, struct raw_entry *e,
                          const char *key, const char *value, const char *env)
{
        if (!e) {
                entry_add(ld, s, key, value, 0, env);
                return;
        }
        char *v = dup_str(ld, value);
        char *n = dup_str(ld, env);
        if (!v || !n) {
                wipe_free(v);
                free(n);
                return;
        }
        wipe_free(e->value);
        free(e->env);
        e->value = v;
        e->env = n;
        e->line = 0;
}

/* ---- pass 1: the file ----
 *
 * The dialect is libinih's (which this reader replaced, so that every error is reported
 * with its line, not only the first, and names are never truncated): "[section]" and
 * "key = value" (or "key: value") lines; ';' or '#' starts a comment line; " ;" (a ';'
 * after a blank) starts a comment at the end of a line; a line that starts with blanks
 * after a key continues that key's value (joined by a newline, as Python's configparser
 * does); a UTF-8 byte order mark on the first line is skipped. */

/* isspace() in the C locale, as inih had it; '\n' never reaches here. */
#define BLANKS " \t\v\f\r"

static bool is_blank(char c)
{
        return c && strchr(BLANKS, c);
}

/* The first of chars in s, or an inline comment's ';' (after a blank), or the end. */
static char *find_or_comment(char *s, const char *chars)
{
        bool was_blank = false;
        for (; *s; s++) {
                if ((chars && strchr(chars, *s)) || (was_blank && *s == ';'))
                        break;
                was_blank = is_blank(*s);
        }
        return s;
}

static char *strip(char *s)
{
        s += strspn(s, BLANKS);
        size_t n = strlen(s);
        while (n > 0 && is_blank(s[n - 1]))
                s[--n] = '\0';
        return s;
}

static void on_section_line(struct loader *ld, char *start)
{
        char *end = strchr(start, ']');
        char *type, *name = NULL;
        enum sec_kind kind;

        ld->cur = NULL;
        ld->bad_section = true;
        ld->cont_ok = false;
        if (!end) {
                diag_add(ld, "%s:%u: section header without ']'", ld->path, ld->lineno);
                return;
        }
        *end = '\0';
        type = strip(start + 1);
        size_t tlen = strcspn(type, BLANKS);
        if (type[tlen]) {
                type[tlen] = '\0';
                name = type + tlen + 1;
                name += strspn(name, BLANKS);
        }
        if (!strcmp(type, "agent"))
                kind = SEC_AGENT;
        else if (!strcmp(type, "server"))
                kind = SEC_SERVER;
        else if (!strcmp(type, "connector"))
                kind = SEC_CONNECTOR;
        else if (!strcmp(type, "resource-type"))
                kind = SEC_RESOURCE_TYPE;
        else {
                diag_add(ld,
                         "%s:%u: [%s]: unknown section (expected [agent], [server], "
                         "[connector NAME] or [resource-type IDENTIFIER])",
                         ld->path, ld->lineno, type);
                return;
        }
        if (kind == SEC_AGENT || kind == SEC_SERVER) {
                if (name) {
                        diag_add(ld, "%s:%u: [%s]: this section takes no name", ld->path,
                                 ld->lineno, type);
                        return;
                }
        } else if (!name) {
                diag_add(ld, "%s:%u: [%s]: a name is required, as in [%s %s]", ld->path, ld->lineno,
                         type, type, kind == SEC_CONNECTOR ? "NAME" : "IDENTIFIER");
                return;
        } else if (!name_ok(name, kind == SEC_CONNECTOR)) {
                diag_add(ld, "%s:%u: [%s]: invalid %s (1 to %d of %s, no space)", ld->path,
                         ld->lineno, type, kind == SEC_CONNECTOR ? "name" : "identifier",
                         CA_CONFIG_MAX_NAME,
                         kind == SEC_CONNECTOR ? "letters, digits, '.', '_', '-'"
                                               : "printable characters but []\";#=,");
                return;
        }
        struct raw_section *old = section_find(ld, kind, name);
        if (old) {
                diag_add(ld, "%s:%u: [%s]: duplicate section (first at line %u)", ld->path,
                         ld->lineno, old->title, old->line);
                return;
        }
        ld->cur = section_new(ld, kind, name, ld->lineno, NULL);
        ld->bad_section = ld->cur == NULL;
}

/* An indented line after a key: its value goes on. */
static void on_continuation(struct loader *ld, char *text)
{
        *find_or_comment(text, NULL) = '\0';
        const char *value = strip(text);
        if (!ld->last_sec || !*value)
                return; /* the key was refused: so is what continues it */
        struct raw_entry *e = &ld->last_sec->entries[ld->last_idx];
        size_t a = strlen(e->value), b = strlen(value);
        if (a + b + 1 > CA_CONFIG_MAX_VALUE) {
                diag_entry(ld, ld->last_sec, e, "value longer than %d bytes", CA_CONFIG_MAX_VALUE);
                ld->last_sec = NULL;
                return;
        }
        char *v = malloc(a + b + 2);
        if (!v) {
                ld->oom = true;
                return;
        }
        /* "key =" then indented lines: the value starts on the next line. */
        size_t sep = a > 0;
        memcpy(v, e->value, a);
        v[a] = '\n';
        memcpy(v + a + sep, value, b + 1);
        wipe_free(e->value);
        e->value = v;
}

static void on_key_line(struct loader *ld, char *start)
{
        char *sep = find_or_comment(start, "=:");
        if (*sep != '=' && *sep != ':') {
                diag_add(ld, "%s:%u: expected 'key = value' or '[section]'", ld->path, ld->lineno);
                return;
        }
        *sep = '\0';
        const char *name = strip(start);
        char *value = sep + 1;
        *find_or_comment(value, NULL) = '\0';
        value = strip(value);

        ld->cont_ok = true;
        ld->last_sec = NULL;
        if (!ld->cur) {
                if (!ld->bad_section)
                        diag_add(ld, "%s:%u: %s: key outside any section", ld->path, ld->lineno,
                                 name);
                return;
        }
        if (!*name) {
                diag_add(ld, "%s:%u: [%s]: empty key name", ld->path, ld->lineno, ld->cur->title);
                return;
        }
        struct raw_entry *e = entry_find(ld->cur, name);
        if (e) {
                diag_add(ld, "%s:%u: [%s] %s: duplicate key (first at line %u)", ld->path,
                         ld->lineno, ld->cur->title, name, e->line);
                return;
        }
        if (strlen(value) > CA_CONFIG_MAX_VALUE) {
                diag_add(ld, "%s:%u: [%s] %s: value longer than %d bytes", ld->path, ld->lineno,
                         ld->cur->title, name, CA_CONFIG_MAX_VALUE);
                return;
        }
        if (entry_add(ld, ld->cur, name, value, ld->lineno, NULL)) {
                ld->last_sec = ld->cur;
                ld->last_idx = ld->cur->count - 1;
        }
}

static void on_line(struct loader *ld, char *line, size_t len)
{
        if (strlen(line) != len) {
                diag_add(ld, "%s:%u: line contains a NUL byte", ld->path, ld->lineno);
                return;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
        if (len > CA_CONFIG_MAX_LINE) {
                diag_add(ld, "%s:%u: line longer than %d characters", ld->path, ld->lineno,
                         CA_CONFIG_MAX_LINE);
                return;
        }
        if (ld->lineno == 1 && !strncmp(line, "\xEF\xBB\xBF", 3))
                line += 3;
        char *start = line + strspn(line, BLANKS);
        if (!*start || *start == ';' || *start == '#')
                return;
        if (ld->cont_ok && start > line)
                on_continuation(ld, start);
        else if (*start == '[')
                on_section_line(ld, start);
        else
                on_key_line(ld, start);
}

static int load_file(struct loader *ld)
{
        struct stat st;
        char *buf = NULL;
        size_t cap = 0;
        int r = 0;

        FILE *f = fopen(ld->path, "re");
        if (!f) {
                r = -errno;
                diag_add(ld, "%s: cannot open: %s", ld->path, strerror(errno));
                goto out;
        }
        if (fstat(fileno(f), &st) < 0) {
                r = -errno;
                diag_add(ld, "%s: cannot stat: %s", ld->path, strerror(errno));
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                r = -EINVAL;
                diag_add(ld, "%s: not a regular file", ld->path);
                goto out;
        }
        if (st.st_size > CA_CONFIG_MAX_FILE) {
                r = -EFBIG;
                diag_add(ld, "%s: larger than %d bytes", ld->path, CA_CONFIG_MAX_FILE);
                goto out;
        }
        while (!ld->oom) {
                errno = 0;
                ssize_t n = getline(&buf, &cap, f);
                if (n < 0) {
                        ld->oom = errno == ENOMEM;
                        break;
                }
                ld->lineno++;
                on_line(ld, buf, (size_t)n);
        }
        if (!ld->oom && ferror(f)) {
                r = -EIO;
                diag_add(ld, "%s: read error", ld->path);
        }
out:
        if (f)
                fclose(f);
        if (buf)
                explicit_bzero(buf, cap); /* a line may have held a back-end password */
        free(buf);
        return r;
}

/* ---- pass 2: the environment ---- */

static const char *env_get(char *const *envp, const char *name)
{
        size_t n = strlen(name);
        for (char *const *e = envp; e && *e; e++) {
                if (!strncmp(*e, name, n) && (*e)[n] == '=')
                        return *e + n + 1;
        }
        return NULL;
}

/* CONNECTOR_AGENT_CONNECTORS=a,b declares sections the file does not have. */
static void env_declare(struct loader *ld, const char *var, enum sec_kind kind)
{
        const char *list = env_get(ld->envp, var);
        if (!list)
                return;
        const char *p = list;
        while (*p) {
                size_t n = strcspn(p, ",");
                char name[CA_CONFIG_MAX_NAME + 2];
                const char *b = p, *e = p + n;
                while (b < e && (*b == ' ' || *b == '\t'))
                        b++;
                while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                if (e > b) {
                        if ((size_t)(e - b) > CA_CONFIG_MAX_NAME) {
                                diag_add(ld, "environment %s: a name is longer than %d characters",
                                         var, CA_CONFIG_MAX_NAME);
                        } else {
                                memcpy(name, b, (size_t)(e - b));
                                name[e - b] = '\0';
                                if (!name_ok(name, kind == SEC_CONNECTOR))
                                        diag_add(ld, "environment %s: '%s' is not a valid %s", var,
                                                 name, kind_word(kind));
                                else if (!section_find(ld, kind, name))
                                        section_new(ld, kind, name, 0, var);
                        }
                }
                p += n;
                if (*p == ',')
                        p++;
        }
}

static void env_strict(struct loader *ld, struct raw_section *sec, const struct ca_keyword_table *t,
                       const char *var, const char *value)
{
        char env[CA_CONFIG_ENV_MAX];
        for (size_t i = 0; i < t->count; i++) {
                if (config_env_name(sec->title, t->keys[i].name, env, sizeof(env)) < 0)
                        continue;
                if (!strcmp(env, var)) {
                        entry_set_env(ld, sec, entry_find(sec, t->keys[i].name), t->keys[i].name,
                                      value, var);
                        return;
                }
        }
        diag_add(ld, "environment %s: no such key in [%s]", var, sec->title);
}

/* Connector and resource-type sections take any key. An existing key whose variable
 * name matches exactly wins; otherwise the section with the longest matching prefix
 * takes the rest, lower-cased, as its key. */
static void env_open(struct loader *ld, const char *var, const char *value)
{
        char env[CA_CONFIG_ENV_MAX], key[CA_CONFIG_ENV_MAX];
        struct raw_section *best = NULL;
        size_t best_len = 0;

        for (size_t i = 0; i < ld->nsec; i++) {
                struct raw_section *s = ld->sections[i];
                if (s->kind != SEC_CONNECTOR && s->kind != SEC_RESOURCE_TYPE)
                        continue;
                for (size_t j = 0; j < s->count; j++) {
                        if (config_env_name(s->title, s->entries[j].key, env, sizeof(env)) == 0 &&
                            !strcmp(env, var)) {
                                entry_set_env(ld, s, &s->entries[j], s->entries[j].key, value, var);
                                return;
                        }
                }
                size_t n = strlen(s->env_prefix);
                if (!strncmp(var, s->env_prefix, n) && var[n] && n > best_len) {
                        best = s;
                        best_len = n;
                }
        }
        if (!best) {
                if (!strncmp(var, ENV_PREFIX "CONNECTOR_", strlen(ENV_PREFIX "CONNECTOR_")) ||
                    !strncmp(var, ENV_PREFIX "RESOURCE_TYPE_", strlen(ENV_PREFIX "RESOURCE_TYPE_")))
                        diag_add(ld,
                                 "environment %s: names no [connector NAME] or [resource-type "
                                 "IDENTIFIER] section (declare it in the file, %s or %s)",
                                 var, ENV_CONNECTORS, ENV_RESOURCE_TYPES);
                return;
        }
        size_t k = 0;
        for (const char *p = var + best_len; *p; p++)
                key[k++] = ascii_lower(*p);
        key[k] = '\0';
        entry_set_env(ld, best, entry_find(best, key), key, value, var);
}

static void load_env(struct loader *ld)
{
        char var[CA_CONFIG_ENV_MAX];
        struct raw_section *agent = section_find(ld, SEC_AGENT, NULL);
        struct raw_section *server = section_find(ld, SEC_SERVER, NULL);

        /* Two sections whose variables would be the same cannot be told apart. */
        for (size_t i = 0; i < ld->nsec; i++) {
                for (size_t j = 0; j < i; j++) {
                        if (!strcmp(ld->sections[i]->env_prefix, ld->sections[j]->env_prefix)) {
                                diag_section(ld, ld->sections[i], NULL,
                                             "its environment variables (%s...) are those of [%s]",
                                             ld->sections[i]->env_prefix, ld->sections[j]->title);
                                break;
                        }
                }
        }
        for (char *const *e = ld->envp; e && *e; e++) {
                const char *eq = strchr(*e, '=');
                if (!eq || strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX)))
                        continue;
                size_t n = (size_t)(eq - *e);
                if (n >= sizeof(var)) {
                        diag_add(ld, "environment %.64s...: name longer than %d characters", *e,
                                 CA_CONFIG_ENV_MAX - 1);
                        continue;
                }
                memcpy(var, *e, n);
                var[n] = '\0';
                /* The first of two equal names wins, as with getenv(). */
                bool seen = false;
                for (char *const *p = ld->envp; p < e && !seen; p++)
                        seen = !strncmp(*p, var, n) && (*p)[n] == '=';
                if (seen || !strcmp(var, ENV_CONNECTORS) || !strcmp(var, ENV_RESOURCE_TYPES))
                        continue;
                if (!strncmp(var, agent->env_prefix, strlen(agent->env_prefix)))
                        env_strict(ld, agent, &ca_config_agent_keys, var, eq + 1);
                else if (!strncmp(var, server->env_prefix, strlen(server->env_prefix)))
                        env_strict(ld, server, &ca_config_server_keys, var, eq + 1);
                else
                        env_open(ld, var, eq + 1);
        }
}

/* ---- pass 3: keyword tables ---- */

static const char *type_hint(enum ca_key_type t)
{
        switch (t) {
        case CA_KEY_DURATION:
                return "not a duration (a number with ms, s, m, h or d, e.g. 30s; bare = seconds)";
        case CA_KEY_SIZE:
                return "not a size (a number of bytes, or with k, M or G, e.g. 16M)";
        case CA_KEY_UINT:
                return "not a whole number";
        case CA_KEY_BOOL:
                return "not a boolean (yes/no, true/false, on/off, 1/0)";
        default:
                return "invalid value";
        }
}

static void apply_table(struct loader *ld, struct raw_section *sec,
                        const struct ca_keyword_table *t, void *base)
{
        char env[CA_CONFIG_ENV_MAX];

        for (size_t i = 0; t->strict && i < sec->count; i++) {
                struct raw_entry *e = &sec->entries[i];
                const struct ca_keyword *kw = config_keyword_find(t, e->key);
                if (!kw)
                        diag_entry(ld, sec, e, "unknown key");
                else if (kw->type == CA_KEY_SECRET && !e->env)
                        diag_entry(ld, sec, e,
                                   "a secret is never written in the configuration file: use "
                                   "client_secret_file, client_secret_credential or %s",
                                   ENV_SECRET);
        }
        for (size_t i = 0; i < t->count; i++) {
                const struct ca_keyword *kw = &t->keys[i];
                struct raw_entry *e = entry_find(sec, kw->name);
                const char *text = kw->def;
                uint64_t u = 0;
                size_t sz = 0;
                int b = 0;

                if (e && kw->type == CA_KEY_SECRET && !e->env)
                        continue; /* refused above */
                /* A secret handed over as a variable often comes from a file (podman's
                 * type=env secrets, `$(cat file)` keeps none, `--env-file` does): one
                 * trailing newline is dropped, as secret_read_file does for a file. */
                if (e && e->env && kw->type == CA_KEY_SECRET) {
                        size_t len = strlen(e->value);
                        if (len > 0 && e->value[len - 1] == '\n')
                                e->value[len - 1] = '\0';
                }
                if (e && strchr(e->value, '\n')) {
                        if (e->env)
                                diag_entry(ld, sec, e,
                                           "the value has a line break inside: an environment "
                                           "value must be one line (a secret may end in one "
                                           "newline, which is removed)");
                        else
                                diag_entry(ld, sec, e,
                                           "continues on an indented line: only back-end "
                                           "settings may span lines");
                        continue;
                }
                if (e && (*e->value || kw->type == CA_KEY_SECRET))
                        text = e->value;
                else if (e && kw->required) {
                        diag_entry(ld, sec, e, "empty value");
                        continue;
                } else if (e)
                        e = NULL; /* empty: the default */
                if (!text) {
                        if (kw->required) {
                                config_env_name(sec->title, kw->name, env, sizeof(env));
                                diag_section(ld, sec, kw->name, "required key missing (or set %s)",
                                             env);
                        }
                        continue;
                }
                switch (kw->type) {
                case CA_KEY_STRING:
                case CA_KEY_SECRET:
                        if (kw->type == CA_KEY_SECRET && !*text) {
                                diag_entry(ld, sec, e, "empty secret");
                                continue;
                        }
                        if (kw->offset == CA_KEY_NO_FIELD)
                                continue;
                        *(char **)((char *)base + kw->offset) = dup_str(ld, text);
                        continue;
                case CA_KEY_DURATION:
                        if (config_parse_duration(text, &u) < 0)
                                goto bad;
                        break;
                case CA_KEY_SIZE:
                        if (config_parse_size(text, &sz) < 0)
                                goto bad;
                        u = sz;
                        break;
                case CA_KEY_UINT:
                        if (config_parse_uint(text, &u) < 0)
                                goto bad;
                        break;
                case CA_KEY_BOOL:
                        if (!parse_bool(text, &b))
                                goto bad;
                        *(int *)((char *)base + kw->offset) = b;
                        continue;
                }
                if (u < kw->min || (kw->max && u > kw->max)) {
                        if (!e)
                                diag_section(ld, sec, kw->name, "built-in default out of range");
                        else if (kw->type == CA_KEY_DURATION)
                                diag_entry(ld, sec, e,
                                           "out of range (%" PRIu64 "ms to %" PRIu64 "ms)", kw->min,
                                           kw->max ? kw->max : UINT64_MAX);
                        else
                                diag_entry(ld, sec, e, "out of range (%" PRIu64 " to %" PRIu64 ")",
                                           kw->min, kw->max ? kw->max : UINT64_MAX);
                        continue;
                }
                if (kw->type == CA_KEY_DURATION)
                        *(uint64_t *)((char *)base + kw->offset) = u;
                else if (kw->type == CA_KEY_SIZE)
                        *(size_t *)((char *)base + kw->offset) = sz;
                else
                        *(unsigned *)((char *)base + kw->offset) = (unsigned)u;
                continue;
        bad:
                /* Defaults are parsed by the same code: one failing is a bug in the table. */
                if (e)
                        diag_entry(ld, sec, e, "%s", type_hint(kw->type));
                else
                        diag_section(ld, sec, kw->name, "bad built-in default");
        }
}

/* https://, or http:// to loopback only: a token must never cross a network in clear.
 * libcurl's URL parser decides what the host, port and parts are, so the check sees the
 * URL as the transfers will (127.1 is 127.0.0.1 there too); on top of it the agent asks
 * for the plain form it appends paths to: "scheme://host[:port][/path]". Writes why the
 * URL is refused into why and returns it, or NULL when it is fine. */
static const char *url_problem(const char *url, char *why, size_t len)
{
        const char *msg = NULL;
        char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL;

        for (const char *p = url; *p; p++) {
                if ((unsigned char)*p <= 0x20 || *p == 0x7f)
                        return "contains a space or a control character";
        }
        CURLU *u = curl_url();
        if (!u)
                return "cannot be checked: out of memory";
        CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
        switch (rc) {
        case CURLUE_OK:
                break;
        case CURLUE_BAD_SCHEME:
        case CURLUE_UNSUPPORTED_SCHEME:
        case CURLUE_BAD_SLASHES:
                msg = "must start with https:// (or http:// to a loopback host)";
                goto out;
        case CURLUE_NO_HOST:
                msg = "has no host";
                goto out;
        case CURLUE_BAD_PORT_NUMBER:
                msg = "has an invalid port";
                goto out;
        case CURLUE_BAD_IPV6:
                msg = "not a valid IPv6 address between [ ]";
                goto out;
        default:
                snprintf(why, len, "is not a valid URL (%s)", curl_url_strerror(rc));
                msg = why;
                goto out;
        }
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0); /* lower case */
        size_t slen = scheme ? strlen(scheme) : 0;
        bool https = scheme && !strcmp(scheme, "https");
        /* libcurl also takes "https:/h" and "https:///h"; paths are appended to this. */
        if ((!https && (!scheme || strcmp(scheme, "http"))) || strncmp(url + slen, "://", 3)) {
                msg = "must start with https:// (or http:// to a loopback host)";
                goto out;
        }
        const char *authority = url + slen + 3;
        size_t alen = strcspn(authority, "/?#");
        if (alen == 0) {
                msg = "has no host";
                goto out;
        }
        /* libcurl keeps an empty query or fragment ("h/?") out of its parts. */
        if (strpbrk(authority, "?#")) {
                msg = "must not have a query or a fragment";
                goto out;
        }
        if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
                msg = "must not carry credentials (user:password@): use client_secret_file";
                goto out;
        }
        /* libcurl drops an empty port ("h:") and takes port 0. */
        if (authority[alen - 1] == ':' ||
            (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && !strcmp(port, "0"))) {
                msg = "has an invalid port";
                goto out;
        }
        if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
                msg = "has no host";
                goto out;
        }
        if (strlen(host) >= CA_URL_HOST_MAX) {
                msg = "host name too long";
                goto out;
        }
        if (https)
                goto out;
        if (host[0] == '[') { /* "[::1]", its zone id already apart */
                struct in6_addr a6;
                host[strlen(host) - 1] = '\0';
                if (inet_pton(AF_INET6, host + 1, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6))
                        goto out;
        } else {
                struct in_addr a4;
                if (!strcasecmp(host, "localhost") || !strcasecmp(host, "localhost."))
                        goto out;
                if (inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127)
                        goto out;
        }
        msg = "plain http:// is allowed only to a loopback host (127.0.0.0/8, localhost, "
              "[::1]): use https://";
out:
        curl_free(scheme);
        curl_free(host);
        curl_free(port);
        curl_free(user);
        curl_url_cleanup(u);
        return msg;
}

static void check_path(struct loader *ld, struct raw_section *sec, const char *key,
                       const char *value, bool absolute)
{
        struct raw_entry *e = entry_find(sec, key);
        if (!value || !e)
                return;
        if (absolute && value[0] != '/')
                diag_entry(ld, sec, e, "must be an absolute path");
        else if (!absolute && access(value, R_OK) < 0)
                diag_entry(ld, sec, e, "cannot read the file: %s", strerror(errno));
}

/* A search list of directories, "A:B": each an absolute path. */
static void check_path_list(struct loader *ld, struct raw_section *sec, const char *key,
                            const char *value)
{
        struct raw_entry *e = entry_find(sec, key);
        if (!value || !e)
                return;
        for (const char *d = value;; d++) {
                if (*d != '/') {
                        diag_entry(ld, sec, e, "must be absolute paths, separated by ':'");
                        return;
                }
                d = strchr(d, ':');
                if (!d)
                        return;
        }
}

/* A password keyword (password=, ?password=) or a URI's user:password@. */
static int conninfo_has_password(const char *conninfo)
{
        if (strstr(conninfo, "password"))
                return 1;
        const char *uri = strstr(conninfo, "://");
        if (!uri)
                return 0;
        uri += 3;
        size_t auth = strcspn(uri, "/?");
        const char *at = memchr(uri, '@', auth);
        return at && memchr(uri, ':', (size_t)(at - uri)) != NULL;
}

/* The journal's driver and where it connects; the journal refuses the rest at open. */
static void validate_journal(struct loader *ld, struct raw_section *sec,
                             const struct ca_config_agent *a)
{
        struct raw_entry *e;
        int pg = a->journal && strcmp(a->journal, "postgresql") == 0;
        if (a->journal && !pg && strcmp(a->journal, "sqlite") != 0 &&
            (e = entry_find(sec, "journal")))
                diag_entry(ld, sec, e, "must be sqlite or postgresql");
        if (pg && !a->journal_connection)
                diag_section(ld, sec, "journal_connection",
                             "journal = postgresql needs journal_connection (a libpq connection "
                             "string, e.g. host=db.example.com dbname=connector_agent user=agent)");
        if (a->journal_password_file && a->journal_password_credential &&
            (e = entry_find(sec, "journal_password_credential")))
                diag_entry(ld, sec, e,
                           "set only one of journal_password_file and journal_password_credential");
        /* config show prints the connection string: a password never goes there. */
        if (a->journal_connection && conninfo_has_password(a->journal_connection) &&
            (e = entry_find(sec, "journal_connection")))
                diag_entry(ld, sec, e,
                           "must not carry a password: use journal_password_file or "
                           "journal_password_credential");
}

static void validate_agent(struct loader *ld, struct raw_section *sec, struct ca_config_agent *a)
{
        struct raw_entry *e;
        enum ca_log_level level;

        if (!a->identifier) {
                char host[HOST_NAME_MAX + 1];
                if (gethostname(host, sizeof(host)) < 0 || !host[0]) {
                        diag_section(ld, sec, "identifier",
                                     "the host name is unknown: set identifier");
                        return;
                }
                host[HOST_NAME_MAX] = '\0';
                a->identifier = dup_str(ld, host);
        }
        if (a->identifier && !name_ok(a->identifier, true)) {
                e = entry_find(sec, "identifier");
                if (e)
                        diag_entry(ld, sec, e, "1 to %d of letters, digits, '.', '_', '-'",
                                   CA_CONFIG_MAX_NAME);
                else
                        diag_section(ld, sec, "identifier",
                                     "the host name is not a valid identifier: set identifier");
        }
        check_path(ld, sec, "state_dir", a->state_dir, true);
        validate_journal(ld, sec, a);
        check_path_list(ld, sec, "backend_dir", a->backend_dir);
        if (a->log_level && log_level_parse(a->log_level, &level) < 0 &&
            (e = entry_find(sec, "log_level")))
                diag_entry(ld, sec, e, "must be one of error, warning, notice, info, debug");
        enum ca_log_format format;
        if (a->log_format && log_format_parse(a->log_format, &format) < 0 &&
            (e = entry_find(sec, "log_format")))
                diag_entry(ld, sec, e, "must be text or json");
        if (a->status_address) {
                struct in6_addr a6;
                if (inet_pton(AF_INET, a->status_address, &a6) != 1 &&
                    inet_pton(AF_INET6, a->status_address, &a6) != 1 &&
                    (e = entry_find(sec, "status_address")))
                        diag_entry(ld, sec, e, "not an IPv4 or IPv6 address");
        }
}

/* "file /etc/connector-agent/client_secret": what config show prints for the secret. */
static char *secret_source(struct loader *ld, const char *kind, const char *where)
{
        char text[PATH_MAX + 32];
        snprintf(text, sizeof(text), "%s %s", kind, where);
        return dup_str(ld, text);
}

static void load_secret(struct loader *ld, struct raw_section *sec, struct ca_config_server *s)
{
        struct raw_entry *file = entry_find(sec, "client_secret_file");
        struct raw_entry *cred = entry_find(sec, "client_secret_credential");
        struct raw_entry *plain = entry_find(sec, "client_secret");
        struct ca_error err = {0};

        /* Empty means unset; a value on several lines was refused by the table, and its
         * text must not reach a message as a path. */
        if ((file && strchr(file->value, '\n')) || (cred && strchr(cred->value, '\n')))
                return;
        if (file && !*file->value)
                file = NULL;
        if (cred && !*cred->value)
                cred = NULL;
        if (plain) { /* from the environment: accepted (or refused) by the table */
                s->client_secret_source = dup_str(ld, "environment " ENV_SECRET);
                return;
        }
        if (file && cred) {
                diag_entry(ld, sec, cred,
                           "set only one of client_secret_file and "
                           "client_secret_credential");
                return;
        }
        char which;
        int rc = secret_read_named(file ? file->value : NULL, cred ? cred->value : NULL,
                                   env_get(ld->envp, "CREDENTIALS_DIRECTORY"), &s->client_secret,
                                   &which, &err);
        if (rc == -ENOENT)
                diag_section(ld, sec, "client_secret",
                             "no secret: set client_secret_file, client_secret_credential or %s",
                             ENV_SECRET);
        else if (rc < 0)
                diag_entry(ld, sec, which == 'f' ? file : cred, "%s", err.msg);
        else if (which == 'f')
                s->client_secret_source = secret_source(ld, "file", file->value);
        else
                s->client_secret_source = secret_source(ld, "credential", cred->value);
}

static void validate_server(struct loader *ld, struct raw_section *sec, struct ca_config_server *s)
{
        struct raw_entry *e;
        const char *why;
        char buf[CA_CONFIG_DIAG_LEN];
        struct stat st;

        if (s->url && (why = url_problem(s->url, buf, sizeof(buf))) && (e = entry_find(sec, "url")))
                diag_entry(ld, sec, e, "%s", why);
        else if (s->url) {
                size_t n = strlen(s->url);
                while (n > 0 && s->url[n - 1] == '/')
                        s->url[--n] = '\0';
        }
        if (s->token_url && (why = url_problem(s->token_url, buf, sizeof(buf))) &&
            (e = entry_find(sec, "token_url")))
                diag_entry(ld, sec, e, "%s", why);
        if (!s->token_url && s->url) {
                size_t n = strlen(s->url) + sizeof("/connect/token");
                s->token_url = malloc(n);
                if (!s->token_url)
                        ld->oom = true;
                else
                        snprintf(s->token_url, n, "%s/connect/token", s->url);
        }
        check_path(ld, sec, "ca_file", s->ca_file, false);
        check_path(ld, sec, "client_cert", s->client_cert, false);
        check_path(ld, sec, "client_key", s->client_key, false);
        if (!s->client_cert != !s->client_key) {
                e = entry_find(sec, s->client_cert ? "client_cert" : "client_key");
                if (e)
                        diag_entry(ld, sec, e, "client_cert and client_key go together");
        }
        /* The private key is a secret too. */
        if (s->client_key && stat(s->client_key, &st) == 0 &&
            (st.st_mode & (S_IROTH | S_IWGRP | S_IWOTH)) && (e = entry_find(sec, "client_key")))
                diag_entry(ld, sec, e,
                           "%s: mode %04o lets others read or change the key: chmod 0600",
                           s->client_key, (unsigned)(st.st_mode & 07777));
        if (s->pinned_pubkey && strncmp(s->pinned_pubkey, "sha256//", 8) &&
            s->pinned_pubkey[0] != '/' && (e = entry_find(sec, "pinned_pubkey")))
                diag_entry(ld, sec, e,
                           "expected sha256//BASE64[;sha256//...] or a key file's path");
        load_secret(ld, sec, s);
}

/* t: the section's table, whose agent_only keys stay out (NULL: every key). */
static int settings_copy(struct loader *ld, const struct raw_section *sec,
                         const struct ca_keyword_table *t, struct ca_settings *out)
{
        if (!sec->count)
                return 0;
        out->items = calloc(sec->count, sizeof(*out->items));
        if (!out->items) {
                ld->oom = true;
                return -ENOMEM;
        }
        for (size_t i = 0; i < sec->count; i++) {
                if (t && config_keyword_find(t, sec->entries[i].key) &&
                    config_keyword_agent_only(sec->entries[i].key))
                        continue;
                struct ca_setting *s = &out->items[out->count++];
                s->key = dup_str(ld, sec->entries[i].key);
                s->value = dup_str(ld, sec->entries[i].value);
                s->line = sec->entries[i].line;
        }
        return 0;
}

static void build(struct loader *ld, struct ca_config *cfg)
{
        size_t nconn = 0, nrt = 0;
        for (size_t i = 0; i < ld->nsec; i++) {
                nconn += ld->sections[i]->kind == SEC_CONNECTOR;
                nrt += ld->sections[i]->kind == SEC_RESOURCE_TYPE;
        }
        if (nconn && !(cfg->connectors = calloc(nconn, sizeof(*cfg->connectors)))) {
                ld->oom = true;
                return;
        }
        if (nrt && !(cfg->resource_types = calloc(nrt, sizeof(*cfg->resource_types)))) {
                ld->oom = true;
                return;
        }
        for (size_t i = 0; i < ld->nsec; i++) {
                struct raw_section *sec = ld->sections[i];
                switch (sec->kind) {
                case SEC_AGENT:
                        apply_table(ld, sec, &ca_config_agent_keys, &cfg->agent);
                        validate_agent(ld, sec, &cfg->agent);
                        break;
                case SEC_SERVER:
                        apply_table(ld, sec, &ca_config_server_keys, &cfg->server);
                        validate_server(ld, sec, &cfg->server);
                        break;
                case SEC_CONNECTOR: {
                        struct ca_config_connector *c = &cfg->connectors[cfg->connector_count++];
                        c->name = dup_str(ld, sec->name);
                        c->line = sec->line;
                        apply_table(ld, sec, &ca_config_connector_keys, c);
                        struct raw_entry *e = entry_find(sec, "backend");
                        if (c->backend && e && !name_ok(c->backend, true))
                                diag_entry(ld, sec, e,
                                           "a plug-in name: letters, digits, '.', '_', '-'");
                        settings_copy(ld, sec, &ca_config_connector_keys, &c->settings);
                        break;
                }
                case SEC_RESOURCE_TYPE: {
                        struct ca_config_resource_type *r =
                            &cfg->resource_types[cfg->resource_type_count++];
                        r->identifier = dup_str(ld, sec->name);
                        r->line = sec->line;
                        apply_table(ld, sec, &ca_config_resource_type_keys, r);
                        settings_copy(ld, sec, NULL, &r->settings);
                        break;
                }
                }
        }
        /* Only once every connector is known. */
        for (size_t i = 0; i < ld->nsec; i++) {
                struct raw_section *sec = ld->sections[i];
                struct raw_entry *e = entry_find(sec, "connector");
                if (sec->kind != SEC_RESOURCE_TYPE || !e || !*e->value || strchr(e->value, '\n') ||
                    section_find(ld, SEC_CONNECTOR, e->value))
                        continue;
                diag_entry(ld, sec, e,
                           "unknown connector: no [connector NAME] section has this name");
        }
}

int config_load(const char *path, char *const *envp, struct ca_config **out,
                struct ca_config_diag *diag)
{
        struct loader ld = {.path = path, .envp = envp, .diag = diag};
        struct ca_config *cfg = NULL;
        int r = 0;

        *out = NULL;
        if (path) {
                struct stat st;
                /* A container may carry no file at all and declare everything in variables. */
                if (stat(path, &st) < 0 && errno == ENOENT && env_get(envp, ENV_CONNECTORS))
                        ld.path = NULL;
                else if ((r = load_file(&ld)) < 0)
                        goto out;
        }
        if (!section_find(&ld, SEC_AGENT, NULL))
                section_new(&ld, SEC_AGENT, NULL, 0, NULL);
        if (!section_find(&ld, SEC_SERVER, NULL))
                section_new(&ld, SEC_SERVER, NULL, 0, NULL);
        env_declare(&ld, ENV_CONNECTORS, SEC_CONNECTOR);
        env_declare(&ld, ENV_RESOURCE_TYPES, SEC_RESOURCE_TYPE);
        if (ld.oom)
                goto out;
        load_env(&ld);

        cfg = calloc(1, sizeof(*cfg));
        if (!cfg) {
                ld.oom = true;
                goto out;
        }
        if (ld.path)
                cfg->path = dup_str(&ld, ld.path);
        build(&ld, cfg);
out:
        if (ld.oom)
                r = -ENOMEM;
        else if (!r && ld.problems)
                r = -EINVAL;
        if (r == 0)
                *out = cfg;
        else
                config_free(cfg);
        for (size_t i = 0; i < ld.nsec; i++)
                section_free(ld.sections[i]);
        free(ld.sections);
        return r;
}

static void settings_free(struct ca_settings *s)
{
        for (size_t i = 0; i < s->count; i++) {
                free(s->items[i].key);
                wipe_free(s->items[i].value);
        }
        free(s->items);
}

/* Every string a table's keys point at in base: a new key needs no line here. */
static void table_free(const struct ca_keyword_table *t, void *base)
{
        for (size_t i = 0; i < t->count; i++) {
                const struct ca_keyword *kw = &t->keys[i];
                if (kw->offset == CA_KEY_NO_FIELD)
                        continue;
                char **field = (char **)(void *)((char *)base + kw->offset);
                if (kw->type == CA_KEY_SECRET)
                        secret_free(*field);
                else if (kw->type == CA_KEY_STRING)
                        free(*field);
        }
}

void config_free(struct ca_config *cfg)
{
        if (!cfg)
                return;
        free(cfg->path);
        table_free(&ca_config_agent_keys, &cfg->agent);
        table_free(&ca_config_server_keys, &cfg->server);
        free(cfg->server.client_secret_source); /* computed, not a key */
        for (size_t i = 0; i < cfg->connector_count; i++) {
                free(cfg->connectors[i].name);
                table_free(&ca_config_connector_keys, &cfg->connectors[i]);
                settings_free(&cfg->connectors[i].settings);
        }
        free(cfg->connectors);
        for (size_t i = 0; i < cfg->resource_type_count; i++) {
                free(cfg->resource_types[i].identifier);
                table_free(&ca_config_resource_type_keys, &cfg->resource_types[i]);
                settings_free(&cfg->resource_types[i].settings);
        }
        free(cfg->resource_types);
        free(cfg);
}

void config_diag_clear(struct ca_config_diag *diag)
{
        if (!diag)
                return;
        for (size_t i = 0; i < diag->count; i++)
                free(diag->lines[i]);
        free(diag->lines);
        diag->lines = NULL;
        diag->count = 0;
}

const char *config_setting(const struct ca_settings *s, const char *key)
{
        for (size_t i = 0; s && i < s->count; i++) {
                if (strcmp(s->items[i].key, key) == 0)
                        return s->items[i].value;
        }
        return NULL;
}

unsigned config_setting_line(const struct ca_settings *s, const char *key)
{
        for (size_t i = 0; s && i < s->count; i++) {
                if (strcmp(s->items[i].key, key) == 0)
                        return s->items[i].line;
        }
        return 0;
}

int config_env_name(const char *section, const char *key, char *buf, size_t len)
{
        size_t n = 0;
        const char *parts[] = {ENV_PREFIX, section, "_", key};

        if (!section || !buf || len == 0)
                return -EINVAL;
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
                for (const char *p = parts[i]; p && *p; p++) {
                        if (n + 1 >= len) {
                                buf[0] = '\0';
                                return -ENAMETOOLONG;
                        }
                        buf[n++] = i == 0 ? *p : is_ascii_alnum(*p) ? ascii_upper(*p) : '_';
                }
        }
        buf[n] = '\0';
        return 0;
}

const struct ca_config_connector *config_find_connector(const struct ca_config *cfg,
                                                        const char *name)
{
        for (size_t i = 0; cfg && name && i < cfg->connector_count; i++) {
                if (strcmp(cfg->connectors[i].name, name) == 0)
                        return &cfg->connectors[i];
        }
        return NULL;
}

const struct ca_config_resource_type *config_find_resource_type(const struct ca_config *cfg,
                                                                const char *identifier)
{
        for (size_t i = 0; cfg && identifier && i < cfg->resource_type_count; i++) {
                if (strcmp(cfg->resource_types[i].identifier, identifier) == 0)
                        return &cfg->resource_types[i];
        }
        return NULL;
}

/* ---- what a reload cannot apply ---- */

static int field_differs(const struct ca_keyword *kw, const void *a, const void *b)
{
        const char *pa = (const char *)a + kw->offset, *pb = (const char *)b + kw->offset;
        switch (kw->type) {
        case CA_KEY_STRING:
        case CA_KEY_SECRET: {
                const char *x = *(char *const *)(const void *)pa;
                const char *y = *(char *const *)(const void *)pb;
                return (x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0);
        }
        case CA_KEY_DURATION:
                return *(const uint64_t *)(const void *)pa != *(const uint64_t *)(const void *)pb;
        case CA_KEY_SIZE:
                return *(const size_t *)(const void *)pa != *(const size_t *)(const void *)pb;
        case CA_KEY_UINT:
                return *(const unsigned *)(const void *)pa != *(const unsigned *)(const void *)pb;
        case CA_KEY_BOOL:
                return *(const int *)(const void *)pa != *(const int *)(const void *)pb;
        }
        return 0;
}

static bool table_differs(const struct ca_keyword_table *t, const void *a, const void *b)
{
        for (size_t i = 0; i < t->count; i++) {
                if (t->keys[i].offset != CA_KEY_NO_FIELD && field_differs(&t->keys[i], a, b))
                        return true;
        }
        return false;
}

static void name_add(char *out, size_t len, const char *title, const char *what)
{
        size_t used = strlen(out);
        if (used + 1 < len)
                snprintf(out + used, len - used, "%s[%s] %s", used ? ", " : "", title, what);
}

static size_t keys_of(const struct ca_keyword_table *t, const char *title, const void *a,
                      const void *b, bool restart_only, char *out, size_t len)
{
        size_t n = 0;
        for (size_t i = 0; i < t->count; i++) {
                const struct ca_keyword *kw = &t->keys[i];
                if ((restart_only && kw->reload) || kw->offset == CA_KEY_NO_FIELD ||
                    !field_differs(kw, a, b))
                        continue;
                name_add(out, len, title, kw->name);
                n++;
        }
        return n;
}

/* The keys of a section that the table does not know: the back-end's. */
static bool same_free_settings(const struct ca_keyword_table *t, const struct ca_settings *x,
                               const struct ca_settings *y)
{
        size_t nx = 0, ny = 0;
        for (size_t i = 0; i < x->count; i++) {
                if (config_keyword_find(t, x->items[i].key))
                        continue;
                nx++;
                const char *v = config_setting(y, x->items[i].key);
                if (!v || strcmp(v, x->items[i].value) != 0)
                        return false;
        }
        for (size_t i = 0; i < y->count; i++)
                ny += !config_keyword_find(t, y->items[i].key);
        return nx == ny;
}

size_t config_changed_keys(const struct ca_config *old, const struct ca_config *fresh,
                           bool restart_only, char *out, size_t len)
{
        char title[CA_CONFIG_MAX_NAME + 16];
        size_t n = keys_of(&ca_config_server_keys, "server", &old->server, &fresh->server,
                           restart_only, out, len);
        n += keys_of(&ca_config_agent_keys, "agent", &old->agent, &fresh->agent, restart_only, out,
                     len);
        bool set_changed = old->connector_count != fresh->connector_count;
        for (size_t i = 0; i < old->connector_count; i++) {
                const struct ca_config_connector *oc = &old->connectors[i];
                const struct ca_config_connector *nc = config_find_connector(fresh, oc->name);
                if (!nc) {
                        set_changed = true;
                        continue;
                }
                snprintf(title, sizeof(title), "connector %s", oc->name);
                n += keys_of(&ca_config_connector_keys, title, oc, nc, restart_only, out, len);
                /* Bound to the running plug-in instance: always a restart. */
                if (!same_free_settings(&ca_config_connector_keys, &oc->settings, &nc->settings)) {
                        name_add(out, len, title, "back-end settings");
                        n++;
                }
        }
        if (set_changed) {
                size_t used = strlen(out);
                if (used + 1 < len)
                        snprintf(out + used, len - used, "%sconnectors added or removed",
                                 used ? ", " : "");
                n++;
        }
        if (restart_only)
                return n;
        bool types_changed = old->resource_type_count != fresh->resource_type_count;
        for (size_t i = 0; !types_changed && i < old->resource_type_count; i++) {
                const struct ca_config_resource_type *ot = &old->resource_types[i];
                const struct ca_config_resource_type *nt =
                    config_find_resource_type(fresh, ot->identifier);
                types_changed = !nt || table_differs(&ca_config_resource_type_keys, ot, nt) ||
                                !same_free_settings(&ca_config_resource_type_keys, &ot->settings,
                                                    &nt->settings);
        }
        if (types_changed) {
                size_t used = strlen(out);
                if (used + 1 < len)
                        snprintf(out + used, len - used, "%sresource-type mappings",
                                 used ? ", " : "");
                n++;
        }
        return n;
}
