/*
 * keycache.c: parsed account keys, keyed by the stored JWK text. Every kid
 * request used to parse the account's JWK and import it into an EVP_PKEY
 * (OpenSSL's fromdata path plus a public-key check), which cost more than the
 * ES256 verification itself. The key is a pure function of the JWK text, so
 * the cache needs no invalidation: a key change stores a new JWK text, which
 * simply misses; the account row (status included) is still read per request.
 * Direct-mapped and bounded, so memory stays flat with any number of accounts.
 */
#include "acme/acme_int.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* Slots in the table; a slot holds one key, so this bounds the memory (about 1 KiB each). */
#define KEYCACHE_SLOTS 1024

struct keycache_slot {
    uint64_t hash;
    char *jwk_json; /* NULL: empty slot */
    EVP_PKEY *key;
};

struct acme_keycache {
    pthread_mutex_t mu;
    struct keycache_slot slots[KEYCACHE_SLOTS];
};

/* FNV-1a: the slot index only; equality is always checked on the full text. */
static uint64_t
fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

struct acme_keycache *
acme_keycache_new(void)
{
    struct acme_keycache *kc = xcalloc(1, sizeof(*kc));

    pthread_mutex_init(&kc->mu, NULL);
    return kc;
}

void
acme_keycache_free(struct acme_keycache *kc)
{
    if (kc == NULL)
        return;
    for (size_t i = 0; i < KEYCACHE_SLOTS; i++) {
        free(kc->slots[i].jwk_json);
        EVP_PKEY_free(kc->slots[i].key);
    }
    pthread_mutex_destroy(&kc->mu);
    free(kc);
}

/* Slow path: parse and check the JWK exactly as before the cache existed. */
static EVP_PKEY *
import_key(const char *jwk_json, struct acme_problem *prob)
{
    cJSON *jwk = cJSON_Parse(jwk_json);
    EVP_PKEY *key = NULL;

    if (jwk == NULL) {
        acme_problem_set(prob, "serverInternal", 500, "stored account key unreadable");
        return NULL;
    }
    key = acme_jwk_to_key(jwk, prob);
    if (key == NULL)
        acme_problem_set(prob, "serverInternal", 500, "stored account key unusable");
    cJSON_Delete(jwk);
    return key;
}

EVP_PKEY *
acme_keycache_get(struct acme_keycache *kc, const char *jwk_json, struct acme_problem *prob)
{
    uint64_t h;
    struct keycache_slot *s;
    EVP_PKEY *key = NULL;

    if (jwk_json == NULL) {
        acme_problem_set(prob, "serverInternal", 500, "stored account key unreadable");
        return NULL;
    }
    if (kc == NULL)
        return import_key(jwk_json, prob);
    h = fnv1a(jwk_json);
    s = &kc->slots[h % KEYCACHE_SLOTS];
    pthread_mutex_lock(&kc->mu);
    if (s->jwk_json != NULL && s->hash == h && strcmp(s->jwk_json, jwk_json) == 0 &&
        EVP_PKEY_up_ref(s->key) == 1)
        key = s->key;
    pthread_mutex_unlock(&kc->mu);
    if (key != NULL)
        return key;
    /* Imported outside the lock: a concurrent miss on the same key just imports twice. */
    key = import_key(jwk_json, prob);
    if (key == NULL || EVP_PKEY_up_ref(key) != 1)
        return key;
    pthread_mutex_lock(&kc->mu);
    free(s->jwk_json);
    EVP_PKEY_free(s->key);
    s->hash = h;
    s->jwk_json = xstrdup(jwk_json);
    s->key = key; /* the cache's reference; the caller keeps the other */
    pthread_mutex_unlock(&kc->mu);
    return key;
}
