/* SPDX-License-Identifier: Apache-2.0 */
/* journal_seal: AES-256-GCM sealing of an order's Changes for the journal (see
 * journal_seal.h). */
#include "journal_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "order.h"

#define SEAL_KEY_LEN   32
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN   16
#define SEAL_PREFIX    "v1:"
#define SEAL_MAX_TEXT  (16u << 20) /* bytes of Changes one order may carry */

struct journal_seal {
        unsigned char key[SEAL_KEY_LEN];
};

void journal_seal_free(struct journal_seal *s)
{
        if (!s)
                return;
        OPENSSL_cleanse(s->key, sizeof(s->key));
        free(s);
}

void journal_seal_text_free(char *text)
{
        if (!text)
                return;
        OPENSSL_cleanse(text, strlen(text));
        free(text);
}

/* Exactly SEAL_KEY_LEN bytes from fd; a file owned by someone else or readable by
 * others is refused, as the agent's other secret files are. */
static int read_key(int fd, const char *path, unsigned char *key, struct ca_error *err)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return ca_error_set(err, -errno, "journal key %s: %s", path, strerror(errno));
        if (!S_ISREG(st.st_mode) || (st.st_mode & 077))
                return ca_error_set(err, -EPERM,
                                    "journal key %s: must be a regular file readable by its owner "
                                    "only (chmod 0600)",
                                    path);
        if (st.st_size != SEAL_KEY_LEN)
                return ca_error_set(err, -EINVAL,
                                    "journal key %s: holds %lld bytes, expected %d random bytes",
                                    path, (long long)st.st_size, SEAL_KEY_LEN);
        size_t got = 0;
        while (got < SEAL_KEY_LEN) {
                ssize_t n = read(fd, key + got, SEAL_KEY_LEN - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return ca_error_set(err, n < 0 ? -errno : -EIO, "journal key %s: %s", path,
                                            n < 0 ? strerror(errno) : "short read");
                got += (size_t)n;
        }
        return 0;
}

/* The first start makes the key: O_EXCL so that two agents never make two keys. */
static int create_key(const char *path, unsigned char *key, struct ca_error *err)
{
        if (RAND_bytes(key, SEAL_KEY_LEN) != 1)
                return ca_error_set(err, -EIO, "journal key %s: no random bytes from OpenSSL",
                                    path);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        size_t done = 0;
        int code = 0;
        while (done < SEAL_KEY_LEN && code == 0) {
                ssize_t n = write(fd, key + done, SEAL_KEY_LEN - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        code = n < 0 ? -errno : -EIO;
                else
                        done += (size_t)n;
        }
        if (code == 0 && fsync(fd) < 0)
                code = -errno;
        close(fd);
        if (code < 0) {
                unlink(path);
                return ca_error_set(err, code, "journal key %s: cannot write it: %s", path,
                                    strerror(-code));
        }
        return 0;
}

int journal_seal_load(const char *state_dir, struct journal_seal **out, struct ca_error *err)
{
        *out = NULL;
        struct journal_seal *s = calloc(1, sizeof(*s));
        if (!s)
                return ca_error_set(err, -ENOMEM, "journal key: out of memory");
        char path[4096];
        const char *cred = getenv("CREDENTIALS_DIRECTORY");
        int code = -ENOENT;
        if (cred && *cred) {
                snprintf(path, sizeof(path), "%s/%s", cred, JOURNAL_SEAL_CREDENTIAL);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd >= 0) {
                        code = read_key(fd, path, s->key, err);
                        close(fd);
                        if (code < 0) {
                                journal_seal_free(s);
                                return code;
                        }
                }
        }
        if (code == -ENOENT) {
                snprintf(path, sizeof(path), "%s/%s", state_dir, JOURNAL_SEAL_KEY_FILE);
                for (int tries = 0; tries < 2 && code == -ENOENT; tries++) {
                        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                        if (fd >= 0) {
                                code = read_key(fd, path, s->key, err);
                                close(fd);
                        } else if (errno != ENOENT) {
                                code = ca_error_set(err, -errno, "journal key %s: %s", path,
                                                    strerror(errno));
                        } else {
                                code = create_key(path, s->key, err);
                                /* -EEXIST: another process made it first: read that one. */
                                if (code == -EEXIST)
                                        code = -ENOENT;
                                else if (code < 0 && code != -ENOENT)
                                        code = ca_error_set(err, code, "journal key %s: %s", path,
                                                            strerror(-code));
                        }
                }
        }
        if (code < 0) {
                journal_seal_free(s);
                return code;
        }
        *out = s;
        return 0;
}

/* --- AES-256-GCM --- */

static int gcm(const struct journal_seal *s, int encrypt, const unsigned char *nonce,
               const char *aad, const unsigned char *in, int in_len, unsigned char *out,
               unsigned char *tag)
{
        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        int ok = ctx != NULL;
        int len = 0, fin = 0;
        ok = ok && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) == 1;
        ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) == 1;
        ok = ok && EVP_CipherInit_ex(ctx, NULL, NULL, s->key, nonce, encrypt) == 1;
        ok = ok &&
             EVP_CipherUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) == 1;
        ok = ok && EVP_CipherUpdate(ctx, out, &len, in, in_len) == 1;
        if (ok && !encrypt)
                ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) == 1;
        ok = ok && EVP_CipherFinal_ex(ctx, out + len, &fin) == 1; /* checks the tag */
        if (ok && encrypt)
                ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) == 1;
        EVP_CIPHER_CTX_free(ctx);
        return ok ? 0 : -1;
}

static const char *order_aad(json_t *obj)
{
        const char *id = json_string_value(json_object_get(obj, "Id"));
        return id ? id : "";
}

static int dump(json_t *obj, char **out, struct ca_error *err)
{
        *out = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
        return *out ? 0 : ca_error_set(err, -ENOMEM, "journal seal: out of memory");
}

/* plain (plen bytes) sealed under aad: a new "v1:<base64>" string, or NULL with err set. */
static char *seal_text(const struct journal_seal *s, const char *aad, const char *plain,
                       size_t plen, struct ca_error *err)
{
        if (plen > SEAL_MAX_TEXT) {
                ca_error_set(err, -E2BIG, "journal seal: Changes too large");
                return NULL;
        }
        size_t raw_len = SEAL_NONCE_LEN + plen + SEAL_TAG_LEN;
        unsigned char *raw = malloc(raw_len);
        char *b64 = raw ? malloc(4 * ((raw_len + 2) / 3) + 1 + strlen(SEAL_PREFIX)) : NULL;
        if (!b64) {
                ca_error_set(err, -ENOMEM, "journal seal: out of memory");
        } else if (RAND_bytes(raw, SEAL_NONCE_LEN) != 1 ||
                   gcm(s, 1, raw, aad, (const unsigned char *)plain, (int)plen,
                       raw + SEAL_NONCE_LEN, raw + SEAL_NONCE_LEN + plen) < 0) {
                ca_error_set(err, -EIO, "journal seal: AES-256-GCM failed (OpenSSL)");
                free(b64);
                b64 = NULL;
        } else {
                strcpy(b64, SEAL_PREFIX);
                EVP_EncodeBlock((unsigned char *)b64 + strlen(SEAL_PREFIX), raw, (int)raw_len);
        }
        free(raw);
        return b64;
}

/* The order's text with Changes sealed, without parsing it: the text is one compact
 * object (order_json_text), so Changes' bytes are the plain text and the sealed value
 * replaces them in place. 1 done, 0 when the text is not plain enough for that (no
 * Changes member as written, Changes null, an Id with escapes): the caller parses. */
static int seal_in_place(const struct journal_seal *s, const char *json, char **out,
                         struct ca_error *err)
{
        size_t len = strlen(json), cs, ce, is, ie;
        if (!order_text_member(json, len, "Changes", &cs, &ce) || json[cs] != '{')
                return 0;
        char aad[CA_ORDER_KEY_MAX + 1] = "";
        if (order_text_member(json, len, "Id", &is, &ie) && json[is] == '"') {
                size_t n = ie - is - 2;
                if (ie - is < 2 || n > CA_ORDER_KEY_MAX || memchr(json + is + 1, '\\', n))
                        return 0;
                memcpy(aad, json + is + 1, n);
                aad[n] = '\0';
        }
        char *b64 = seal_text(s, aad, json + cs, ce - cs, err);
        if (!b64)
                return -1;
        static const char open[] = "{\"" JOURNAL_SEAL_MARK "\":\"", close[] = "\"}";
        size_t blen = strlen(b64);
        size_t olen = cs + sizeof(open) - 1 + blen + sizeof(close) - 1 + (len - ce);
        char *o = malloc(olen + 1);
        if (!o) {
                free(b64);
                ca_error_set(err, -ENOMEM, "journal seal: out of memory");
                return -1;
        }
        char *w = o;
        memcpy(w, json, cs), w += cs;
        memcpy(w, open, sizeof(open) - 1), w += sizeof(open) - 1;
        memcpy(w, b64, blen), w += blen;
        memcpy(w, close, sizeof(close) - 1), w += sizeof(close) - 1;
        memcpy(w, json + ce, len - ce), w += len - ce;
        *w = '\0';
        free(b64);
        *out = o;
        return 1;
}

int journal_seal_order(const struct journal_seal *s, const char *json, char **out,
                       struct ca_error *err)
{
        *out = NULL;
        int done = seal_in_place(s, json, out, err);
        if (done != 0)
                return done < 0 ? (err ? err->code : -EIO) : 0;
        json_error_t jerr;
        json_t *obj = json_loads(json, 0, &jerr);
        if (!json_is_object(obj)) {
                json_decref(obj);
                return ca_error_set(err, -EINVAL, "journal seal: the order is not a JSON object");
        }
        json_t *changes = json_object_get(obj, "Changes");
        if (!changes || json_is_null(changes)) {
                int code = dump(obj, out, err);
                json_decref(obj);
                return code;
        }
        char *plain = json_dumps(changes, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t plen = plain ? strlen(plain) : 0;
        int code = 0;
        char *b64 = plain ? seal_text(s, order_aad(obj), plain, plen, err) : NULL;
        if (!plain)
                code = ca_error_set(err, -ENOMEM, "journal seal: out of memory");
        else if (!b64)
                code = err ? err->code : -EIO;
        else {
                json_t *sealed = json_pack("{ss}", JOURNAL_SEAL_MARK, b64);
                if (!sealed || json_object_set_new(obj, "Changes", sealed) < 0)
                        code = ca_error_set(err, -ENOMEM, "journal seal: out of memory");
                else
                        code = dump(obj, out, err);
        }
        if (plain)
                OPENSSL_cleanse(plain, plen);
        free(plain);
        free(b64);
        json_decref(obj);
        return code;
}

int journal_seal_open_order(const struct journal_seal *s, const char *json, char **out,
                            struct ca_error *err)
{
        *out = NULL;
        json_error_t jerr;
        json_t *obj = json_loads(json, 0, &jerr);
        if (!json_is_object(obj)) {
                json_decref(obj);
                return ca_error_set(err, -EINVAL, "journal seal: the order is not a JSON object");
        }
        json_t *changes = json_object_get(obj, "Changes");
        const char *text = json_string_value(json_object_get(changes, JOURNAL_SEAL_MARK));
        if (!json_is_object(changes) || json_object_size(changes) != 1 || !text) {
                int code = dump(obj, out, err);
                json_decref(obj);
                return code;
        }
        int code = 0;
        size_t tlen = strlen(text), plen = 0;
        unsigned char *raw = NULL, *plain = NULL;
        if (strncmp(text, SEAL_PREFIX, strlen(SEAL_PREFIX)) != 0 || tlen > 2 * SEAL_MAX_TEXT) {
                code = -EBADMSG;
        } else {
                const char *b = text + strlen(SEAL_PREFIX);
                size_t blen = strlen(b);
                raw = malloc(blen / 4 * 3 + 1);
                int n = raw && blen % 4 == 0
                            ? EVP_DecodeBlock(raw, (const unsigned char *)b, (int)blen)
                            : -1;
                /* EVP_DecodeBlock counts the padding's zero bytes too. */
                if (n > 0 && blen >= 1 && b[blen - 1] == '=')
                        n--;
                if (n > 0 && blen >= 2 && b[blen - 2] == '=')
                        n--;
                if (n < SEAL_NONCE_LEN + SEAL_TAG_LEN) {
                        code = -EBADMSG;
                } else {
                        plen = (size_t)n - SEAL_NONCE_LEN - SEAL_TAG_LEN;
                        plain = malloc(plen + 1);
                        if (!plain)
                                code = -ENOMEM;
                        else if (gcm(s, 0, raw, order_aad(obj), raw + SEAL_NONCE_LEN, (int)plen,
                                     plain, raw + SEAL_NONCE_LEN + plen) < 0)
                                code = -EBADMSG;
                }
        }
        json_t *opened = NULL;
        if (code == 0) {
                opened = json_loadb((const char *)plain, plen, 0, &jerr);
                if (!opened || json_object_set_new(obj, "Changes", opened) < 0)
                        code = -EBADMSG;
                else
                        code = dump(obj, out, err);
        }
        if (code == -EBADMSG)
                ca_error_set(err, code,
                             "journal seal: the order's sealed Changes do not open with this "
                             "agent's key (altered, or the journal key was replaced)");
        else if (code == -ENOMEM)
                ca_error_set(err, code, "journal seal: out of memory");
        if (plain)
                OPENSSL_cleanse(plain, plen);
        free(plain);
        free(raw);
        json_decref(obj); /* drops the opened Changes too: only *out holds them now */
        return code;
}

int journal_seal_key_check(const struct journal_seal *s, char out[JOURNAL_SEAL_CHECK_LEN + 1])
{
        /* A MAC of a fixed text: equal for equal keys, and says nothing about the key. */
        static const char label[] = "connector-agent journal key check v1";
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (!HMAC(EVP_sha256(), s->key, sizeof(s->key), (const unsigned char *)label,
                  sizeof(label) - 1, mac, &len) ||
            len * 2 < JOURNAL_SEAL_CHECK_LEN)
                return -EIO;
        for (unsigned i = 0; i < JOURNAL_SEAL_CHECK_LEN / 2; i++)
                snprintf(out + 2 * i, 3, "%02x", mac[i]);
        out[JOURNAL_SEAL_CHECK_LEN] = '\0';
        return 0;
}
