/* SPDX-License-Identifier: Apache-2.0 */
/* sql_password: yescrypt, bcrypt (libxcrypt) and argon2id (libargon2) hashes. */
#include "sql_password.h"

#include <argon2.h>
#include <crypt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define ARGON2ID_PREFIX "$argon2id$"

enum sql_password_method sql_password_method(const char *name)
{
        if (!name)
                return SQL_PW_NONE;
        if (strcmp(name, "yescrypt") == 0)
                return SQL_PW_YESCRYPT;
        if (strcmp(name, "bcrypt") == 0)
                return SQL_PW_BCRYPT;
        if (strcmp(name, "argon2id") == 0 || strcmp(name, "argon2") == 0)
                return SQL_PW_ARGON2ID;
        return SQL_PW_NONE;
}

/* hash = crypt(password, setting) through libxcrypt; -1 when it fails (unknown method, a
 * setting it rejects). crypt_rn, not crypt_r: it returns NULL instead of a failure token,
 * and sanitizers do not intercept it (their crypt_r wrapper cannot reach a libcrypt that
 * only this dlopen'ed plug-in links). The work area holds the password: erased before it
 * goes. */
static int xcrypt(const char *password, const char *setting, char *hash, size_t len)
{
        struct crypt_data *cd = calloc(1, sizeof(*cd));
        if (!cd)
                return -1;
        const char *out = crypt_rn(password, setting, cd, (int)sizeof(*cd));
        int ok = out && out[0] != '*' && strlen(out) < len;
        if (ok)
                snprintf(hash, len, "%s", out);
        explicit_bzero(cd, sizeof(*cd));
        free(cd);
        return ok ? 0 : -1;
}

static int random_bytes(unsigned char *p, size_t n)
{
        size_t got = 0;
        while (got < n) {
                ssize_t r = getrandom(p + got, n - got, 0);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return -1;
                got += (size_t)r;
        }
        return 0;
}

static int argon2id_new(const char *password, char *out, size_t len)
{
        unsigned char salt[SQL_ARGON2_SALT_LEN];
        if (random_bytes(salt, sizeof(salt)) < 0)
                return -1;
        size_t need = argon2_encodedlen(SQL_ARGON2_T_COST, SQL_ARGON2_M_COST_KIB, SQL_ARGON2_LANES,
                                        sizeof(salt), SQL_ARGON2_HASH_LEN, Argon2_id);
        if (need > len)
                return -1;
        int rc = argon2id_hash_encoded(SQL_ARGON2_T_COST, SQL_ARGON2_M_COST_KIB, SQL_ARGON2_LANES,
                                       password, strlen(password), salt, sizeof(salt),
                                       SQL_ARGON2_HASH_LEN, out, len);
        explicit_bzero(salt, sizeof(salt));
        return rc == ARGON2_OK ? 0 : -1;
}

int sql_password_hash(enum sql_password_method method, const char *password, char *out, size_t len)
{
        char setting[CRYPT_GENSALT_OUTPUT_SIZE];
        const char *prefix = NULL;
        switch (method) {
        case SQL_PW_YESCRYPT:
                prefix = "$y$";
                break;
        case SQL_PW_BCRYPT:
                prefix = "$2b$";
                break;
        case SQL_PW_ARGON2ID:
                return argon2id_new(password, out, len);
        default:
                return -1;
        }
        if (!crypt_gensalt_rn(prefix, 0, NULL, 0, setting, sizeof(setting)))
                return -1;
        return xcrypt(password, setting, out, len);
}

/* The cost an argon2id hash asks for, read before libargon2 would allocate it. */
static int argon2id_within_bounds(const char *stored)
{
        unsigned version = 0, m = 0, t = 0, p = 0;
        if (sscanf(stored, ARGON2ID_PREFIX "v=%u$m=%u,t=%u,p=%u$", &version, &m, &t, &p) != 4)
                return 0;
        return m > 0 && m <= SQL_ARGON2_MAX_M_KIB && t > 0 && t <= SQL_ARGON2_MAX_T && p > 0 &&
               p <= SQL_ARGON2_MAX_LANES;
}

int sql_password_matches(const char *password, const char *stored)
{
        if (!stored || !*stored)
                return 0;
        if (strncmp(stored, ARGON2ID_PREFIX, strlen(ARGON2ID_PREFIX)) == 0) {
                if (!argon2id_within_bounds(stored))
                        return 0;
                return argon2id_verify(stored, password, strlen(password)) == ARGON2_OK;
        }
        if (stored[0] != '$')
                return 0; /* not a crypt hash: DES crypt would take its first two bytes */
        char again[SQL_PASSWORD_HASH_MAX];
        int ok = xcrypt(password, stored, again, sizeof(again)) == 0 && strcmp(again, stored) == 0;
        explicit_bzero(again, sizeof(again));
        return ok;
}
