/* SPDX-License-Identifier: Apache-2.0 */
/* sql_password: the sql back-end's password hashes (internal to the plug-in).
 *
 * Owns the methods password_hash names: yescrypt and bcrypt through libxcrypt, argon2id
 * through libargon2. A hash is made with a fresh random salt; a stored hash is checked by
 * its own method, whatever the mapping names now, so that changing password_hash never
 * makes a stored password look different. Thread-safe (no shared state); every work area
 * that held the password is erased before it is freed. */
#ifndef CA_SQL_PASSWORD_H
#define CA_SQL_PASSWORD_H

#include <stddef.h>

#define SQL_PASSWORD_HASH_MAX 384 /* longest hash, with its NUL (libxcrypt's output size) */

/* Argon2id's cost (OWASP's first choice): 19 MiB, two passes, one lane. A stored hash that
 * asks for more than the MAX values is treated as not matching rather than computed: the
 * table's contents must not decide how much memory the agent spends. */
#define SQL_ARGON2_M_COST_KIB 19456
#define SQL_ARGON2_T_COST     2
#define SQL_ARGON2_LANES      1
#define SQL_ARGON2_SALT_LEN   16
#define SQL_ARGON2_HASH_LEN   32
#define SQL_ARGON2_MAX_M_KIB  (256 * 1024)
#define SQL_ARGON2_MAX_T      16
#define SQL_ARGON2_MAX_LANES  8

enum sql_password_method { SQL_PW_NONE, SQL_PW_YESCRYPT, SQL_PW_BCRYPT, SQL_PW_ARGON2ID };

/* "yescrypt", "bcrypt", "argon2id" (or "argon2"); SQL_PW_NONE for anything else. */
enum sql_password_method sql_password_method(const char *name);

/* A new hash of password with a fresh salt into out (at least SQL_PASSWORD_HASH_MAX
 * bytes); -1 when hashing fails. */
int sql_password_hash(enum sql_password_method method, const char *password, char *out, size_t len);

/* Is stored a hash of password? 1 yes, 0 no (another password, a hash of an unknown
 * method or beyond the bounds, a value that is no hash at all). */
int sql_password_matches(const char *password, const char *stored);

#endif
