/* Loading the configuration happens in three passes over an intermediate form of raw
 * sections (key, value, line): the file through libinih, then the environment on top,
 * then the keyword tables that convert, bound and check every value into struct
 * ca_config. Every pass records problems and goes on, so that one run shows the
 * operator all of them; the config is handed out only when there were none.
 *
 * Values are never quoted in a diagnostic: a misplaced secret must not reach a log, and
 * FILE:LINE already points at the value. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
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

        /* State shared by the line reader and the key handler: inih calls the handler for
         * the line the reader returned last, so lineno is the handler's line. */
        FILE *f;
        char *buf;
        size_t bufcap;
        unsigned lineno;
        struct raw_section *cur; /* NULL outside a (valid) section */
        bool bad_section;        /* keys under a refused header are not reported again */
        bool cont_ok;            /* an indented line now continues the previous key */
        bool is_cont;            /* the current line is such a continuation */
        struct raw_section *last_sec;
        size_t last_idx;
        unsigned syntax_errors;
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

static bool parse_uint(const char *s, uint64_t *out)
{
        uint64_t v = 0;
        if (!*s)
                return false;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return false;
                unsigned d = (unsigned)(*p - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *out = v;
        return true;
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

/* ---- pass 1: the file ---- */

/* inih's own scan for '=' / ':', which stops at an inline comment (" ;"). */
static bool has_separator(const char *s)
{
        bool was_space = false;
        for (; *s; s++) {
                if (*s == '=' || *s == ':')
                        return true;
                if (was_space && *s == ';')
                        return false;
                was_space = *s == ' ' || *s == '\t';
        }
        return false;
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
                ld->syntax_errors++;
                return;
        }
        *end = '\0';
        type = start + 1;
        type += strspn(type, " \t");
        for (char *p = end - 1; p >= type && (*p == ' ' || *p == '\t'); p--)
                *p = '\0';
        size_t tlen = strcspn(type, " \t");
        if (type[tlen]) {
                type[tlen] = '\0';
                name = type + tlen + 1;
                name += strspn(name, " \t");
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

/* Mirrors inih's reading of one line so that every syntax error is reported (inih
 * reports only the first) and sections keep their full names (inih truncates them).
 * Returns true when the line may go on to inih. */
static bool classify_line(struct loader *ld, char *line)
{
        char *start = line;
        if (ld->lineno == 1 && !strncmp(start, "\xEF\xBB\xBF", 3))
                start += 3;
        start += strspn(start, " \t");
        if (*start == ';' || *start == '#' || !*start)
                return true;
        if (ld->cont_ok && start > line) {
                ld->is_cont = true;
                return true;
        }
        if (*start == '[') {
                char copy[CA_CONFIG_MAX_LINE + 1];
                snprintf(copy, sizeof(copy), "%s", start);
                on_section_line(ld, copy);
                return true;
        }
        if (!has_separator(start)) {
                diag_add(ld, "%s:%u: expected 'key = value' or '[section]'", ld->path, ld->lineno);
                ld->syntax_errors++;
                return false;
        }
        ld->cont_ok = true;
        return true;
}

static char *read_line(char *str, int num, void *stream)
{
        struct loader *ld = stream;
        ssize_t n = getline(&ld->buf, &ld->bufcap, ld->f);
        if (n < 0)
                return NULL;
        ld->lineno++;
        ld->is_cont = false;
        char *line = ld->buf;
        size_t len = (size_t)n;
        if (strlen(line) != len) {
                diag_add(ld, "%s:%u: line contains a NUL byte", ld->path, ld->lineno);
                ld->syntax_errors++;
                snprintf(str, (size_t)num, ";\n");
                return str;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
        if (len + 3 > (size_t)num) {
                diag_add(ld, "%s:%u: line longer than %d characters", ld->path, ld->lineno,
                         num - 3);
                ld->syntax_errors++;
                snprintf(str, (size_t)num, ";\n");
                return str;
        }
        if (!classify_line(ld, line))
                snprintf(str, (size_t)num, ";\n");
        else
                snprintf(str, (size_t)num, "%s\n", line);
        return str;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
        struct loader *ld = user;
        struct raw_entry *e;
        (void)section; /* ours is the untruncated one */

        if (ld->is_cont) {
                /* A continued value (indented line) joins the previous with a newline, as in
                 * Python's configparser: long SQL statements read better that way. */
                if (!ld->last_sec || !*value)
                        return 1;
                e = &ld->last_sec->entries[ld->last_idx];
                size_t a = strlen(e->value), b = strlen(value);
                if (a + b + 1 > CA_CONFIG_MAX_VALUE) {
                        diag_entry(ld, ld->last_sec, e, "value longer than %d bytes",
                                   CA_CONFIG_MAX_VALUE);
                        ld->last_sec = NULL;
                        return 1;
                }
                char *v = malloc(a + b + 2);
                if (!v) {
                        ld->oom = true;
                        return 1;
                }
                /* "key =" then indented lines: the value starts on the next line. */
                size_t sep = a > 0;
                memcpy(v, e->value, a);
                v[a] = '\n';
                memcpy(v + a + sep, value, b + 1);
                wipe_free(e->value);
                e->value = v;
                return 1;
        }
        ld->last_sec = NULL;
        if (!ld->cur) {
                if (!ld->bad_section)
                        diag_add(ld, "%s:%u: %s: key outside any section", ld->path, ld->lineno,
                                 name);
                return 1;
        }
        if (!*name) {
                diag_add(ld, "%s:%u: [%s]: empty key name", ld->path, ld->lineno, ld->cur->title);
                return 1;
        }
        e = entry_find(ld->cur, name);
        if (e) {
                diag_add(ld, "%s:%u: [%s] %s: duplicate key (first at line %u)", ld->path,
                         ld->lineno, ld->cur->title, name, e->line);
                return 1;
        }
        if (strlen(value) > CA_CONFIG_MAX_VALUE) {
                diag_add(ld, "%s:%u: [%s] %s: value longer than %d bytes", ld->path, ld->lineno,
                         ld->cur->title, name, CA_CONFIG_MAX_VALUE);
                return 1;
        }
        if (entry_add(ld, ld->cur, name, value, ld->lineno, NULL)) {
                ld->last_sec = ld->cur;
                ld->last_idx = ld->cur->count - 1;
        }
        return 1;
}

static int load_file(struct loader *ld)
{
        struct stat st;
        int r = 0;

        ld->f = fopen(ld->path, "re");
        if (!ld->f) {
                r = -errno;
                diag_add(ld, "%s: cannot open: %s", ld->path, strerror(errno));
                goto out;
        }
        if (fstat(fileno(ld->f), &st) < 0) {
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
        /* Debian's libinih takes its line limit from this global (default 200, too short
         * for an SQL statement); config_load runs on the main thread only. */
        int saved_max_line = ini_max_line;
        ini_max_line = CA_CONFIG_MAX_LINE + 3;
        int rc = ini_parse_stream(read_line, ld, on_key, ld);
        ini_max_line = saved_max_line;
        if (ferror(ld->f)) {
                r = -EIO;
                diag_add(ld, "%s: read error", ld->path);
                goto out;
        }
        if (rc > 0 && ld->syntax_errors == 0)
                diag_add(ld, "%s:%d: syntax error", ld->path, rc);
        else if (rc < 0) {
                r = rc == -2 ? -ENOMEM : -EIO;
                diag_add(ld, "%s: cannot parse", ld->path);
        }
out:
        if (ld->f)
                fclose(ld->f);
        ld->f = NULL;
        if (ld->buf)
                explicit_bzero(ld->buf, ld->bufcap);
        free(ld->buf);
        ld->buf = NULL;
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
                if (e && strchr(e->value, '\n')) {
                        diag_entry(ld, sec, e,
                                   "continues on an indented line: only back-end settings may "
                                   "span lines");
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
                        if (!parse_uint(text, &u))
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

/* https://, or http:// to loopback only: a token must never cross a network in clear. */
static const char *url_problem(const char *url)
{
        char host[CA_URL_HOST_MAX];
        const char *rest, *port = NULL;
        bool https, v6 = false;

        for (const char *p = url; *p; p++) {
                if ((unsigned char)*p <= 0x20 || *p == 0x7f)
                        return "contains a space or a control character";
        }
        if (!strncasecmp(url, "https://", 8)) {
                https = true;
                rest = url + 8;
        } else if (!strncasecmp(url, "http://", 7)) {
                https = false;
                rest = url + 7;
        } else {
                return "must start with https:// (or http:// to a loopback host)";
        }
        if (strpbrk(rest, "?#"))
                return "must not have a query or a fragment";
        size_t n = strcspn(rest, "/");
        if (memchr(rest, '@', n))
                return "must not carry credentials (user:password@): use client_secret_file";
        if (n == 0)
                return "has no host";
        if (n >= sizeof(host))
                return "host name too long";
        memcpy(host, rest, n);
        host[n] = '\0';
        char *h = host;
        if (h[0] == '[') {
                char *rb = strchr(h, ']');
                if (!rb)
                        return "IPv6 address without ']'";
                if (rb[1] && rb[1] != ':')
                        return "has an invalid port";
                port = rb[1] ? rb + 2 : NULL;
                *rb = '\0';
                h++;
                v6 = true;
                struct in6_addr a6;
                if (inet_pton(AF_INET6, h, &a6) != 1)
                        return "not a valid IPv6 address between [ ]";
        } else {
                char *c = strchr(h, ':');
                if (c) {
                        *c = '\0';
                        port = c + 1;
                }
        }
        if (!*h)
                return "has no host";
        if (port) {
                uint64_t p;
                if (strlen(port) > 5 || !parse_uint(port, &p) || p == 0 || p > 65535)
                        return "has an invalid port";
        }
        if (https)
                return NULL;
        if (v6) {
                struct in6_addr a6;
                if (inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6))
                        return NULL;
        } else {
                struct in_addr a4;
                if (!strcasecmp(h, "localhost") || !strcasecmp(h, "localhost."))
                        return NULL;
                if (inet_pton(AF_INET, h, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127)
                        return NULL;
        }
        return "plain http:// is allowed only to a loopback host (127.0.0.0/8, localhost, "
               "[::1]): use https://";
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
        check_path(ld, sec, "backend_dir", a->backend_dir, true);
        if (a->log_level && log_level_parse(a->log_level, &level) < 0 &&
            (e = entry_find(sec, "log_level")))
                diag_entry(ld, sec, e, "must be one of error, warning, notice, info, debug");
        if (a->status_address) {
                struct in6_addr a6;
                if (inet_pton(AF_INET, a->status_address, &a6) != 1 &&
                    inet_pton(AF_INET6, a->status_address, &a6) != 1 &&
                    (e = entry_find(sec, "status_address")))
                        diag_entry(ld, sec, e, "not an IPv4 or IPv6 address");
        }
}

static void load_secret(struct loader *ld, struct raw_section *sec, struct ca_config_server *s)
{
        struct raw_entry *file = entry_find(sec, "client_secret_file");
        struct raw_entry *cred = entry_find(sec, "client_secret_credential");
        struct raw_entry *plain = entry_find(sec, "client_secret");
        struct ca_error err = {0};
        char path[PATH_MAX];

        /* Empty means unset; a value on several lines was refused by the table, and its
         * text must not reach a message as a path. */
        if ((file && strchr(file->value, '\n')) || (cred && strchr(cred->value, '\n')))
                return;
        if (file && !*file->value)
                file = NULL;
        if (cred && !*cred->value)
                cred = NULL;
        if (plain) /* from the environment: accepted (or refused) by the table */
                return;
        if (file && cred) {
                diag_entry(ld, sec, cred,
                           "set only one of client_secret_file and "
                           "client_secret_credential");
                return;
        }
        if (file) {
                if (secret_read_file(file->value, &s->client_secret, &err) < 0)
                        diag_entry(ld, sec, file, "%s", err.msg);
                return;
        }
        if (cred) {
                const char *dir = env_get(ld->envp, "CREDENTIALS_DIRECTORY");
                if (!name_ok(cred->value, true)) {
                        diag_entry(ld, sec, cred, "must be a credential name, not a path");
                        return;
                }
                if (!dir || !*dir) {
                        diag_entry(ld, sec, cred,
                                   "CREDENTIALS_DIRECTORY is not set (does the unit have "
                                   "LoadCredential=%s:...?)",
                                   cred->value);
                        return;
                }
                if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, cred->value) >=
                    sizeof(path)) {
                        diag_entry(ld, sec, cred, "credential path too long");
                        return;
                }
                if (secret_read_file(path, &s->client_secret, &err) < 0)
                        diag_entry(ld, sec, cred, "%s", err.msg);
                return;
        }
        diag_section(ld, sec, "client_secret",
                     "no secret: set client_secret_file, client_secret_credential or %s",
                     ENV_SECRET);
}

static void validate_server(struct loader *ld, struct raw_section *sec, struct ca_config_server *s)
{
        struct raw_entry *e;
        const char *why;
        struct stat st;

        if (s->url && (why = url_problem(s->url)) && (e = entry_find(sec, "url")))
                diag_entry(ld, sec, e, "%s", why);
        else if (s->url) {
                size_t n = strlen(s->url);
                while (n > 0 && s->url[n - 1] == '/')
                        s->url[--n] = '\0';
        }
        if (s->token_url && (why = url_problem(s->token_url)) && (e = entry_find(sec, "token_url")))
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

static int settings_copy(struct loader *ld, const struct raw_section *sec, struct ca_settings *out)
{
        if (!sec->count)
                return 0;
        out->items = calloc(sec->count, sizeof(*out->items));
        if (!out->items) {
                ld->oom = true;
                return -ENOMEM;
        }
        for (size_t i = 0; i < sec->count; i++) {
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
                        settings_copy(ld, sec, &c->settings);
                        break;
                }
                case SEC_RESOURCE_TYPE: {
                        struct ca_config_resource_type *r =
                            &cfg->resource_types[cfg->resource_type_count++];
                        r->identifier = dup_str(ld, sec->name);
                        r->line = sec->line;
                        apply_table(ld, sec, &ca_config_resource_type_keys, r);
                        settings_copy(ld, sec, &r->settings);
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

void config_free(struct ca_config *cfg)
{
        if (!cfg)
                return;
        free(cfg->path);
        free(cfg->agent.identifier);
        free(cfg->agent.state_dir);
        free(cfg->agent.backend_dir);
        free(cfg->agent.log_level);
        free(cfg->agent.status_address);
        free(cfg->server.url);
        free(cfg->server.token_url);
        free(cfg->server.client_id);
        secret_free(cfg->server.client_secret);
        free(cfg->server.scope);
        free(cfg->server.api_version);
        free(cfg->server.ca_file);
        free(cfg->server.client_cert);
        free(cfg->server.client_key);
        free(cfg->server.pinned_pubkey);
        for (size_t i = 0; i < cfg->connector_count; i++) {
                free(cfg->connectors[i].name);
                free(cfg->connectors[i].backend);
                settings_free(&cfg->connectors[i].settings);
        }
        free(cfg->connectors);
        for (size_t i = 0; i < cfg->resource_type_count; i++) {
                free(cfg->resource_types[i].identifier);
                free(cfg->resource_types[i].connector);
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
