/* SPDX-License-Identifier: Apache-2.0 */
/* journal_seal: order values the journal must not keep in the clear (a password the
 * server sends in an order's Changes), sealed with AES-256-GCM (OpenSSL).
 *
 * The key is 32 random bytes held only in this module's memory: from the systemd
 * credential "journal-key" ($CREDENTIALS_DIRECTORY/journal-key) when there is one, else
 * from STATE_DIR/journal.key, created (0600, O_EXCL) at the first start and refused when
 * anyone but its owner may read it. A sealed order is the order's JSON with its
 * "Changes" object replaced by {"$sealed": "v1:<base64 of nonce | ciphertext | tag>"};
 * the order's Id is the additional data, so a sealed value cannot be moved to another
 * order. Nothing else of the order is hidden: the journal's own columns (ids, change
 * type) stay readable for the operator commands.
 *
 * Owns: struct journal_seal (the key; erased by journal_seal_free). Every out string is
 * malloc'd and the caller's; a string that held opened Changes should be released with
 * journal_seal_text_free, which erases it first. Thread-safe once loaded (read-only). */
#ifndef CA_JOURNAL_SEAL_H
#define CA_JOURNAL_SEAL_H

#include "error.h"

#define JOURNAL_SEAL_CREDENTIAL "journal-key"
#define JOURNAL_SEAL_KEY_FILE   "journal.key"
#define JOURNAL_SEAL_MARK       "$sealed"

struct journal_seal;

/* Loads (or creates, at the first start) the key; state_dir must exist. */
int journal_seal_load(const char *state_dir, struct journal_seal **out, struct ca_error *err);
void journal_seal_free(struct journal_seal *s);

/* The order's JSON with its Changes sealed (an order without Changes comes back as it
 * is). -EINVAL when json is not an object. */
int journal_seal_order(const struct journal_seal *s, const char *json, char **out,
                       struct ca_error *err);
/* The inverse: the order's JSON with its Changes opened; an order that was never sealed
 * (a journal written before sealing) comes back as it is. -EBADMSG when the sealed value
 * was altered or sealed with another key. */
int journal_seal_open_order(const struct journal_seal *s, const char *json, char **out,
                            struct ca_error *err);
/* A check value of the key (hex of an HMAC of a fixed text, never the key): a shared
 * journal records it so that an agent started with another key is refused at once, not
 * at the first sealed order it cannot open. -EIO when OpenSSL fails. */
#define JOURNAL_SEAL_CHECK_LEN 32
int journal_seal_key_check(const struct journal_seal *s, char out[JOURNAL_SEAL_CHECK_LEN + 1]);
/* Erases and frees a string from journal_seal_open_order (NULL is fine). */
void journal_seal_text_free(char *text);

#endif
