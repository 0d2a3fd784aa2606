/* tests/storage/test_crypto.c -- storage/crypto: AES-256-GCM against known
 * answers, seal/open round trips, tamper detection for every class of byte
 * (ciphertext, tag, associated data, nonce) and a wrong key; key files (hex,
 * raw, and every way one can be wrong); SHA-256 one-shot, two-piece and
 * incremental; the table of algorithms (every row by name, digests by
 * algorithm); signatures of every signature row with keys OpenSSL makes here
 * (round trips, a change or another key refused, RSA 1024 and curves or key
 * types of no row refused naming what they are). */
#include <criterion/criterion.h>

#include "storage/crypto.h"
#include "testutil.h"

#include <ctype.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void unhex(const char *h, uint8_t *out)
{
    for (size_t i = 0; h[2 * i]; i++) {
        unsigned v;
        cr_assert_eq(sscanf(h + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static sr_aead *aead_of(const uint8_t bytes[SR_KEY_LEN], sr_key *k)
{
    sr_key_from_bytes(k, bytes);
    sr_aead *a = NULL;
    cr_assert_eq(sr_aead_create(k, &a), SR_OK);
    return a;
}

/* McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13-16
 * (AES-256, 96-bit IV) */
Test(aead, known_answers)
{
    static const struct {
        const char *key, *iv, *pt, *aad, *ct, *tag;
    } kat[] = {
        {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "", "",
         "530f8afbc74536b9a963b4f1c4cb738b"},
        {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
         "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18",
         "d0d1c8a799996bf0265b98b5d48ab919"},
        {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
         "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657"
         "ba637b391aafd255",
         "",
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0a"
         "bcc9f662898015ad",
         "b094dac5d93471bdec1a502270e3cc6c"},
        {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
         "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657"
         "ba637b39",
         "feedfacedeadbeeffeedfacedeadbeefabaddad2",
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0a"
         "bcc9f662",
         "76fc6ece0f4e1768cddf8853bb2d551b"},
    };
    for (size_t i = 0; i < sizeof kat / sizeof *kat; i++) {
        uint8_t key[SR_KEY_LEN], iv[SR_NONCE_LEN], pt[64], aad[32], ct[64], tag[SR_TAG_LEN], want_ct[64],
            want_tag[SR_TAG_LEN], back[64];
        size_t n = strlen(kat[i].pt) / 2, an = strlen(kat[i].aad) / 2;
        unhex(kat[i].key, key);
        unhex(kat[i].iv, iv);
        unhex(kat[i].pt, pt);
        unhex(kat[i].aad, aad);
        unhex(kat[i].ct, want_ct);
        unhex(kat[i].tag, want_tag);
        sr_key k;
        sr_aead *a = aead_of(key, &k);
        cr_assert_eq(sr_aead_seal(a, iv, aad, an, pt, n, ct, tag), SR_OK, "case %zu", i);
        cr_assert_arr_eq(ct, want_ct, n, "case %zu: ciphertext", i);
        cr_assert_arr_eq(tag, want_tag, SR_TAG_LEN, "case %zu: tag", i);
        cr_assert_eq(sr_aead_open(a, iv, aad, an, ct, n, back, tag), SR_OK, "case %zu", i);
        cr_assert_arr_eq(back, pt, n);
        sr_aead_destroy(a);
    }
}

Test(aead, round_trip_at_many_lengths_with_one_context)
{
    static const size_t lens[] = {0, 1, 15, 16, 17, 31, 64, 1000, 65536 + 3};
    static const size_t aads[] = {0, 1, 13, 16, 100};
    uint8_t key[SR_KEY_LEN];
    tu_rng r = {tu_seed(7)};
    for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)tu_next(&r);
    sr_key k;
    sr_aead *a = aead_of(key, &k);
    size_t max = 65536 + 3;
    uint8_t *pt = malloc(max), *ct = malloc(max), *back = malloc(max), aad[100], nonce[SR_NONCE_LEN],
            tag[SR_TAG_LEN];
    cr_assert(pt && ct && back);
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
        for (size_t ai = 0; ai < sizeof aads / sizeof *aads; ai++) {
            size_t n = lens[li], an = aads[ai];
            for (size_t i = 0; i < n; i++) pt[i] = (uint8_t)tu_next(&r);
            for (size_t i = 0; i < an; i++) aad[i] = (uint8_t)tu_next(&r);
            for (size_t i = 0; i < SR_NONCE_LEN; i++) nonce[i] = (uint8_t)tu_next(&r);
            cr_assert_eq(sr_aead_seal(a, nonce, aad, an, pt, n, ct, tag), SR_OK);
            if (n >= 16) cr_assert_neq(memcmp(ct, pt, n), 0, "n %zu: the ciphertext is not the plaintext", n);
            memset(back, 0xAA, n);
            cr_assert_eq(sr_aead_open(a, nonce, aad, an, ct, n, back, tag), SR_OK, "n %zu aad %zu", n, an);
            cr_assert_eq(memcmp(back, pt, n), 0, "n %zu aad %zu", n, an);
        }
    free(pt);
    free(ct);
    free(back);
    sr_aead_destroy(a);
}

/* Flipping any bit of any byte of what open takes -- the ciphertext, the
 * tag, the associated data or the nonce -- makes it refuse (SR_ECORRUPT);
 * so does another key. */
Test(aead, every_tampered_byte_and_a_wrong_key_are_refused)
{
    enum { N = 40, AN = 20 };
    uint8_t key[SR_KEY_LEN], key2[SR_KEY_LEN], pt[N], ct[N], aad[AN], nonce[SR_NONCE_LEN], tag[SR_TAG_LEN], back[N];
    for (int i = 0; i < SR_KEY_LEN; i++) key[i] = (uint8_t)(i * 7 + 1), key2[i] = key[i];
    key2[31] ^= 1;
    for (int i = 0; i < N; i++) pt[i] = (uint8_t)i;
    for (int i = 0; i < AN; i++) aad[i] = (uint8_t)(0xA0 + i);
    for (int i = 0; i < SR_NONCE_LEN; i++) nonce[i] = (uint8_t)(0x50 + i);
    sr_key k, k2;
    sr_aead *a = aead_of(key, &k), *b = aead_of(key2, &k2);
    cr_assert_eq(sr_aead_seal(a, nonce, aad, AN, pt, N, ct, tag), SR_OK);
    struct {
        const char *what;
        uint8_t *p;
        size_t n;
    } classes[] = {
        {"ciphertext", ct, N},
        {"tag", tag, SR_TAG_LEN},
        {"associated data", aad, AN},
        {"nonce", nonce, SR_NONCE_LEN},
    };
    for (size_t c = 0; c < sizeof classes / sizeof *classes; c++)
        for (size_t i = 0; i < classes[c].n; i++)
            for (int bit = 0; bit < 8; bit += 3) {
                classes[c].p[i] ^= (uint8_t)(1u << bit);
                cr_assert_eq(sr_aead_open(a, nonce, aad, AN, ct, N, back, tag), SR_ECORRUPT, "%s byte %zu bit %d",
                             classes[c].what, i, bit);
                classes[c].p[i] ^= (uint8_t)(1u << bit);
            }
    /* a shorter associated data or ciphertext (truncation) */
    cr_assert_eq(sr_aead_open(a, nonce, aad, AN - 1, ct, N, back, tag), SR_ECORRUPT, "truncated aad");
    cr_assert_eq(sr_aead_open(a, nonce, aad, AN, ct, N - 1, back, tag), SR_ECORRUPT, "truncated ciphertext");
    /* untouched, it still opens (the loop restored every byte) */
    cr_assert_eq(sr_aead_open(a, nonce, aad, AN, ct, N, back, tag), SR_OK);
    cr_assert_arr_eq(back, pt, N);
    cr_assert_eq(sr_aead_open(b, nonce, aad, AN, ct, N, back, tag), SR_ECORRUPT, "another key");
    cr_assert_neq(k.id, k2.id, "keys one bit apart have different ids");
    sr_aead_destroy(a);
    sr_aead_destroy(b);
}

/* ---- key files ------------------------------------------------------------ */

#define HEX64 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define HEX64U "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"

Test(key, files_that_load_and_files_that_do_not)
{
    static const struct {
        const char *what;
        const char *content; /* NULL: no file */
        size_t len;          /* 0: strlen */
        int ok;
    } rows[] = {
        {"64 hex digits", HEX64, 0, 1},
        {"64 upper-case hex digits", HEX64U, 0, 1},
        {"hex with a trailing newline", HEX64 "\n", 0, 1},
        {"hex with white space around", " \t\n" HEX64 "\r\n\n ", 0, 1},
        {"32 raw bytes", "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
                         "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f", 32, 1},
        {"no file", NULL, 0, 0},
        {"an empty file", "", 0, 0},
        {"white space only", " \n\n", 0, 0},
        {"62 hex digits", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e", 0, 0},
        {"63 hex digits", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1", 0, 0},
        {"65 hex digits", HEX64 "2", 0, 0},
        {"66 hex digits", HEX64 "20", 0, 0},
        {"a non-hex digit", "g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 0, 0},
        {"a 0x prefix", "0x" HEX64, 0, 0},
        {"white space inside", "00010203 0405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 0, 0},
        {"hex then a comment", HEX64 " # key", 0, 0},
        {"31 raw bytes", "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"
                         "\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f", 31, 0},
        {"33 raw bytes", "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"
                         "\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x20\x21", 33, 0},
    };
    uint8_t want[SR_KEY_LEN];
    for (int i = 0; i < SR_KEY_LEN; i++) want[i] = (uint8_t)i;
    sr_key ref;
    sr_key_from_bytes(&ref, want);
    char *dir = tu_tmpdir("crypto-key");
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        char path[512];
        snprintf(path, sizeof path, "%s/key%zu", dir, r);
        if (rows[r].content) {
            size_t n = rows[r].len ? rows[r].len : strlen(rows[r].content);
            cr_assert_eq(tu_write_file(path, rows[r].content, n), 0);
        }
        /* the same bytes from each source: the file, file:PATH, a command
         * printing it, and (text without a NUL) an environment variable */
        char fspec[530], cspec[540], espec[] = "env:SR_TEST_KEY";
        snprintf(fspec, sizeof fspec, "file:%s", path);
        snprintf(cspec, sizeof cspec, "cmd:cat '%s'", path);
        int has_env = rows[r].content && !rows[r].len;
        if (has_env) setenv("SR_TEST_KEY", rows[r].content, 1);
        else unsetenv("SR_TEST_KEY");
        const char *specs[] = {path, fspec, cspec, espec};
        const char *names[] = {path, path, "cmd:cat", "env:SR_TEST_KEY"};
        for (int sp = 0; sp < 4; sp++) {
            sr_key k;
            memset(&k, 0, sizeof k);
            char err[600] = "";
            int rc = sr_key_load(specs[sp], &k, err, sizeof err);
            if (rows[r].ok && (sp < 3 || has_env)) {
                cr_assert_eq(rc, SR_OK, "%s from %s: %s", rows[r].what, specs[sp], err);
                cr_assert_arr_eq(k.bytes, want, SR_KEY_LEN, "%s from %s: the key's bytes", rows[r].what, specs[sp]);
                cr_assert_eq(k.id, ref.id, "%s: the key id", rows[r].what);
            } else {
                cr_assert_eq(rc, SR_EKEY, "%s from %s", rows[r].what, specs[sp]);
                cr_assert(strstr(err, names[sp]) != NULL, "%s: the message names the source: %s", rows[r].what, err);
                cr_assert_eq(sr_key_load(specs[sp], &k, NULL, 0), SR_EKEY, "%s: without a message buffer",
                             rows[r].what);
            }
        }
    }
    unsetenv("SR_TEST_KEY");
    tu_rmrf(dir);
    free(dir);
}

/* A command that fails, hangs or talks too much; an empty source: each
 * refused, the message saying which source and what went wrong. */
Test(key, sources_that_fail_say_which_and_why)
{
    static const struct {
        const char *spec;
        int timeout_ms;
        const char *says;
    } rows[] = {
        {"cmd:exit 3", 5000, "cmd:exit 3: exited with status 3"},
        {"cmd:kill -9 $$", 5000, "ended by signal 9"},
        {"cmd:sleep 5", 200, "no answer within 200 ms (killed)"},
        {"cmd:head -c 5000 /dev/zero", 5000, "printed more than 256 bytes"},
        {"cmd:", 5000, "no command"},
        {"cmd:/no/such/program", 5000, "exited with status 127"},
        {"env:", 5000, "not named"},
        {"env:SR_TEST_NO_SUCH_VARIABLE", 5000, "env:SR_TEST_NO_SUCH_VARIABLE: the environment variable is not set"},
        {"cmd:echo 0011", 5000, "cmd:echo 0011: expected 64 hex digits or 32 raw bytes (got 5 bytes)"},
    };
    unsetenv("SR_TEST_NO_SUCH_VARIABLE");
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        sr_key k;
        char err[600] = "";
        cr_assert_eq(sr_key_load_from(rows[r].spec, rows[r].timeout_ms, &k, err, sizeof err), SR_EKEY, "%s",
                     rows[r].spec);
        cr_assert(strstr(err, rows[r].says) != NULL, "%s: %s", rows[r].spec, err);
    }
    /* a command's key is the file's */
    sr_key a, b;
    cr_assert_eq(sr_key_load("cmd:printf '%064d' 7", &a, NULL, 0), SR_OK);
    uint8_t seven[SR_KEY_LEN] = {0};
    seven[SR_KEY_LEN - 1] = 7;
    sr_key_from_bytes(&b, seven);
    cr_assert_arr_eq(a.bytes, b.bytes, SR_KEY_LEN);
    cr_assert_eq(a.id, b.id);
}

Test(key, the_id_names_the_key_without_being_its_bytes)
{
    uint8_t a[SR_KEY_LEN] = {0}, b[SR_KEY_LEN] = {0};
    b[0] = 1;
    sr_key ka, ka2, kb;
    sr_key_from_bytes(&ka, a);
    sr_key_from_bytes(&ka2, a);
    sr_key_from_bytes(&kb, b);
    cr_assert_eq(ka.id, ka2.id, "deterministic");
    cr_assert_neq(ka.id, kb.id);
    /* SHA-256("suiro-key-id-v1" || key), first 4 bytes little-endian */
    uint8_t h[SR_HASH_LEN], buf[15 + SR_KEY_LEN];
    memcpy(buf, "suiro-key-id-v1", 15);
    memcpy(buf + 15, b, SR_KEY_LEN);
    sr_sha256(buf, sizeof buf, h);
    cr_assert_eq(kb.id, (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24);
}

/* ---- SHA-256 -------------------------------------------------------------- */

Test(sha256, known_answers_and_the_three_ways_agree)
{
    static const struct {
        const char *in, *hex;
    } kat[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof kat / sizeof *kat; i++) {
        uint8_t h[SR_HASH_LEN];
        char hex[2 * SR_HASH_LEN + 1];
        sr_sha256(kat[i].in, strlen(kat[i].in), h);
        sr_hex(h, SR_HASH_LEN, hex);
        cr_assert_str_eq(hex, kat[i].hex, "sha256(\"%s\")", kat[i].in);
    }
    /* two pieces (small: the stack path; large: the EVP path) and
     * incremental, at every split, give the one-shot hash */
    static const size_t lens[] = {0, 1, 100, 511, 512, 513, 5000};
    uint8_t *buf = malloc(5000);
    cr_assert(buf);
    tu_rng r = {3};
    for (size_t i = 0; i < 5000; i++) buf[i] = (uint8_t)tu_next(&r);
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        size_t n = lens[li];
        uint8_t one[SR_HASH_LEN], two[SR_HASH_LEN], inc[SR_HASH_LEN];
        sr_sha256(buf, n, one);
        for (size_t cut = 0; cut <= n; cut += n / 7 + 1) {
            sr_sha256_2(buf, cut, buf + cut, n - cut, two);
            cr_assert_arr_eq(two, one, SR_HASH_LEN, "n %zu cut %zu", n, cut);
            sr_sha256_ctx c = {0};
            cr_assert_eq(sr_sha256_init(&c), SR_OK);
            cr_assert_eq(sr_sha256_update(&c, buf, cut), SR_OK);
            cr_assert_eq(sr_sha256_update(&c, buf + cut, n - cut), SR_OK);
            cr_assert_eq(sr_sha256_final(&c, inc), SR_OK);
            sr_sha256_release(&c);
            sr_sha256_release(&c); /* idempotent */
            cr_assert_arr_eq(inc, one, SR_HASH_LEN, "incremental n %zu cut %zu", n, cut);
        }
    }
    free(buf);
    sr_sha256_ctx z = {0};
    sr_sha256_release(&z); /* a zeroed ctx is released safely */
}

Test(random, fills_and_differs)
{
    uint8_t a[64], b[64];
    cr_assert_eq(sr_random(a, sizeof a), SR_OK);
    cr_assert_eq(sr_random(b, sizeof b), SR_OK);
    cr_assert_neq(memcmp(a, b, sizeof a), 0);
}

/* ---- the table of algorithms (R-SE-4) ------------------------------------- */

Test(algs, every_row_by_name_any_case_and_back)
{
    static const struct {
        const char *name;
        sr_alg id;
        int kind;
        size_t size;
    } rows[] = {
        {"AES-256-GCM", SR_ALG_AES_256_GCM, SR_ALG_KIND_AEAD, 32}, {"SHA-256", SR_ALG_SHA_256, SR_ALG_KIND_HASH, 32},
        {"SHA-384", SR_ALG_SHA_384, SR_ALG_KIND_HASH, 48},         {"ES256", SR_ALG_ES256, SR_ALG_KIND_SIG, 64},
        {"ES384", SR_ALG_ES384, SR_ALG_KIND_SIG, 96},              {"PS256", SR_ALG_PS256, SR_ALG_KIND_SIG, 0},
        {"EdDSA", SR_ALG_EDDSA, SR_ALG_KIND_SIG, 64},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        sr_alg a = SR_ALG_NONE;
        char lower[32];
        size_t n = strlen(rows[i].name);
        for (size_t j = 0; j <= n; j++) lower[j] = (char)tolower((unsigned char)rows[i].name[j]);
        cr_assert_eq(sr_alg_by_name(rows[i].name, 0, &a, NULL, 0), SR_OK, "%s", rows[i].name);
        cr_assert_eq(a, rows[i].id);
        a = SR_ALG_NONE;
        cr_assert_eq(sr_alg_by_name(lower, rows[i].kind, &a, NULL, 0), SR_OK, "%s", lower);
        cr_assert_eq(a, rows[i].id);
        cr_assert_str_eq(sr_alg_name(rows[i].id), rows[i].name);
        cr_assert_eq(sr_alg_kind(rows[i].id), rows[i].kind);
        cr_assert_eq(sr_alg_size(rows[i].id), rows[i].size, "%s", rows[i].name);
        /* of another kind: not found */
        int other = rows[i].kind == SR_ALG_KIND_SIG ? SR_ALG_KIND_HASH : SR_ALG_KIND_SIG;
        cr_assert_eq(sr_alg_by_name(rows[i].name, other, &a, NULL, 0), SR_EINVAL);
    }
    cr_assert_null(sr_alg_name(SR_ALG_NONE));
    cr_assert_null(sr_alg_name(99));
    cr_assert_eq(sr_alg_kind(99), 0);
    char err[256];
    sr_alg a;
    cr_assert_eq(sr_alg_by_name("RS256", SR_ALG_KIND_SIG, &a, err, sizeof err), SR_EINVAL);
    cr_assert_str_eq(err, "unknown signature algorithm 'RS256' (known: ES256, ES384, PS256, EdDSA)");
    cr_assert_eq(sr_alg_by_name("MD5", 0, &a, err, sizeof err), SR_EINVAL);
    cr_assert_str_eq(err, "unknown algorithm 'MD5' (known: AES-256-GCM, SHA-256, SHA-384, ES256, ES384, PS256, EdDSA)");
    cr_assert_eq(sr_alg_by_name(NULL, 0, &a, NULL, 0), SR_EINVAL);
}

Test(algs, digests_by_algorithm_known_answers_one_shot_and_streamed)
{
    static const struct {
        int alg;
        const char *in, *hex;
    } kat[] = {
        {SR_ALG_SHA_256, "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {SR_ALG_SHA_384, "abc",
         "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"},
        {SR_ALG_SHA_384, "",
         "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"},
    };
    for (size_t i = 0; i < sizeof kat / sizeof *kat; i++) {
        uint8_t h[SR_HASH_MAX_LEN], g[SR_HASH_MAX_LEN];
        char hex[2 * SR_HASH_MAX_LEN + 1];
        size_t n = sr_alg_size(kat[i].alg);
        cr_assert_eq(sr_digest(kat[i].alg, kat[i].in, strlen(kat[i].in), h), SR_OK);
        sr_hex(h, n, hex);
        cr_assert_str_eq(hex, kat[i].hex);
        sr_digest_ctx c = {0};
        cr_assert_eq(sr_digest_init(&c, kat[i].alg), SR_OK);
        for (const char *p = kat[i].in; *p; p++) cr_assert_eq(sr_digest_update(&c, p, 1), SR_OK);
        cr_assert_eq(sr_digest_final(&c, g), SR_OK);
        sr_digest_release(&c);
        cr_assert_arr_eq(g, h, n);
    }
    uint8_t h[SR_HASH_MAX_LEN];
    sr_digest_ctx c = {0};
    cr_assert_eq(sr_digest(SR_ALG_ES256, "x", 1, h), SR_EINVAL); /* not a hash */
    cr_assert_eq(sr_digest_init(&c, SR_ALG_AES_256_GCM), SR_EINVAL);
    sr_digest_release(&c);
    /* the SHA-256 names refuse a SHA-384 context's 48 bytes */
    cr_assert_eq(sr_digest_init(&c, SR_ALG_SHA_384), SR_OK);
    cr_assert_eq(sr_sha256_final(&c, h), SR_EINVAL);
    sr_digest_release(&c);
}

Test(algs, aead_by_algorithm)
{
    uint8_t kb[SR_KEY_LEN] = {1}, nonce[SR_NONCE_LEN] = {2}, tag[SR_TAG_LEN], ct[5], pt[5];
    sr_key k;
    sr_key_from_bytes(&k, kb);
    sr_aead *a = NULL, *b = NULL;
    cr_assert_eq(sr_aead_create_alg(SR_ALG_SHA_256, &k, &a), SR_EINVAL);
    cr_assert_eq(sr_aead_create_alg(SR_ALG_AES_256_GCM, &k, &a), SR_OK);
    cr_assert_eq(sr_aead_create(&k, &b), SR_OK);
    cr_assert_eq(sr_aead_seal(a, nonce, "ad", 2, "hello", 5, ct, tag), SR_OK);
    cr_assert_eq(sr_aead_open(b, nonce, "ad", 2, ct, 5, pt, tag), SR_OK); /* the same algorithm */
    cr_assert_arr_eq(pt, "hello", 5);
    sr_aead_destroy(a);
    sr_aead_destroy(b);
}

/* ---- signatures ------------------------------------------------------------ */

/* An RSA-PSS key (the key type that may only do PSS) of bits */
static EVP_PKEY *rsa_pss_gen(unsigned bits)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    cr_assert(c && EVP_PKEY_keygen_init(c) == 1 && EVP_PKEY_CTX_set_rsa_keygen_bits(c, (int)bits) == 1 &&
              EVP_PKEY_generate(c, &k) == 1);
    EVP_PKEY_CTX_free(c);
    return k;
}

/* A key made by OpenSSL, written as PEM: its private key to dir/name.key,
 * its public key to dir/name.pub. */
static void write_key(const char *dir, const char *name, EVP_PKEY *k, char priv[512], char pub[512])
{
    cr_assert(k);
    snprintf(priv, 512, "%s/%s.key", dir, name);
    snprintf(pub, 512, "%s/%s.pub", dir, name);
    FILE *f = fopen(priv, "w");
    cr_assert(f && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(f);
    f = fopen(pub, "w");
    cr_assert(f && PEM_write_PUBKEY(f, k) == 1);
    fclose(f);
    EVP_PKEY_free(k);
}

Test(sig, every_signature_algorithm_signs_and_verifies_and_refuses_a_change)
{
    char *dir = tu_tmpdir("sig");
    static const struct {
        const char *name;
        int alg;
        size_t len;
    } rows[] = {{"es256", SR_ALG_ES256, 64}, {"es384", SR_ALG_ES384, 96}, {"ps256", SR_ALG_PS256, 256},
                {"ps256pss", SR_ALG_PS256, 384}, {"eddsa", SR_ALG_EDDSA, 64}};
    EVP_PKEY *made[] = {EVP_EC_gen("P-256"), EVP_EC_gen("P-384"), EVP_RSA_gen(2048),
                        rsa_pss_gen(3072), EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")};
    sr_sigkey *priv[5], *pub[5];
    for (size_t i = 0; i < 5; i++) {
        char kp[512], pp[512], err[300];
        write_key(dir, rows[i].name, made[i], kp, pp);
        cr_assert_eq(sr_sigkey_load(kp, 1, &priv[i], err, sizeof err), SR_OK, "%s: %s", rows[i].name, err);
        cr_assert_eq(sr_sigkey_load(pp, 0, &pub[i], err, sizeof err), SR_OK, "%s: %s", rows[i].name, err);
        cr_assert_eq(sr_sigkey_load(pp, 1, &pub[i], err, sizeof err), SR_ECRYPTO, "a public key does not sign");
        cr_assert_eq(sr_sigkey_alg(priv[i]), rows[i].alg, "%s", rows[i].name);
        cr_assert_eq(sr_sigkey_alg(pub[i]), rows[i].alg);
        cr_assert_eq(sr_sigkey_sig_len(priv[i]), rows[i].len, "%s", rows[i].name);
        cr_assert(sr_sigkey_private(priv[i]) && !sr_sigkey_private(pub[i]));
        uint8_t a[SR_HASH_LEN], b[SR_HASH_LEN];
        cr_assert_eq(sr_sigkey_id(priv[i], a), SR_OK);
        cr_assert_eq(sr_sigkey_id(pub[i], b), SR_OK);
        cr_assert_arr_eq(a, b, SR_HASH_LEN);
    }
    static const char msg[] = "{\"monitorId\":\"M1\",\"values\":[]}";
    for (size_t i = 0; i < 5; i++) {
        uint8_t s[SR_SIG_MAX_LEN];
        size_t n = 0;
        cr_assert_eq(sr_sigkey_sign(priv[i], msg, sizeof msg - 1, s, &n), SR_OK, "%s", rows[i].name);
        cr_assert_eq(n, rows[i].len);
        cr_assert_eq(sr_sigkey_verify(pub[i], msg, sizeof msg - 1, s, n), SR_OK, "%s", rows[i].name);
        cr_assert_eq(sr_sigkey_verify(priv[i], msg, sizeof msg - 1, s, n), SR_OK);
        cr_assert_eq(sr_sigkey_verify(pub[i], msg, sizeof msg - 2, s, n), SR_ECORRUPT, "another message");
        cr_assert_eq(sr_sigkey_verify(pub[i], msg, sizeof msg - 1, s, n - 1), SR_ECORRUPT, "a short signature");
        s[n / 2] ^= 1;
        cr_assert_eq(sr_sigkey_verify(pub[i], msg, sizeof msg - 1, s, n), SR_ECORRUPT, "%s: a flipped bit",
                     rows[i].name);
        s[n / 2] ^= 1;
        /* another key (of every other row, and of the same algorithm) refuses it */
        for (size_t j = 0; j < 5; j++)
            if (j != i) {
                int rc = sr_sigkey_verify(pub[j], msg, sizeof msg - 1, s, n);
                cr_assert(rc == SR_ECORRUPT, "%s's signature under %s's key: %d", rows[i].name, rows[j].name, rc);
            }
        /* a public key does not sign */
        cr_assert_eq(sr_sigkey_sign(pub[i], msg, 3, s, &n), SR_EINVAL);
    }
    /* ECDSA and Ed25519 are as JWS has them: the ES256 signature verifies
     * with OpenSSL as DER of raw r || s; an Ed25519 signature verifies with
     * OpenSSL's one-shot EVP_DigestVerify directly */
    uint8_t s[SR_SIG_MAX_LEN];
    size_t n = 0;
    cr_assert_eq(sr_sigkey_sign(priv[4], msg, sizeof msg - 1, s, &n), SR_OK);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    cr_assert(EVP_DigestVerifyInit(md, NULL, NULL, NULL, (EVP_PKEY *)sr_sigkey_evp(pub[4])) == 1);
    cr_assert(EVP_DigestVerify(md, s, n, (const uint8_t *)msg, sizeof msg - 1) == 1);
    EVP_MD_CTX_free(md);
    /* PS256 as JWS has it: RSA-PSS, SHA-256, MGF1-SHA-256, salt = 32 bytes;
     * OpenSSL told exactly that verifies it, told salt 20 does not */
    cr_assert_eq(sr_sigkey_sign(priv[2], msg, sizeof msg - 1, s, &n), SR_OK);
    for (int salt = 32; salt >= 20; salt -= 12) {
        EVP_PKEY_CTX *pc = NULL;
        md = EVP_MD_CTX_new();
        cr_assert(EVP_DigestVerifyInit(md, &pc, EVP_sha256(), NULL, (EVP_PKEY *)sr_sigkey_evp(pub[2])) == 1);
        cr_assert(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1);
        cr_assert(EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, salt) == 1);
        cr_assert(EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) == 1);
        int ok = EVP_DigestVerify(md, s, n, (const uint8_t *)msg, sizeof msg - 1) == 1;
        cr_assert_eq(ok, salt == 32, "salt %d", salt);
        EVP_MD_CTX_free(md);
    }
    /* ES384 as JWS has it: raw r || s of 48 bytes each, as DER for OpenSSL */
    cr_assert_eq(sr_sigkey_sign(priv[1], msg, sizeof msg - 1, s, &n), SR_OK);
    ECDSA_SIG *es = ECDSA_SIG_new();
    cr_assert(ECDSA_SIG_set0(es, BN_bin2bn(s, 48, NULL), BN_bin2bn(s + 48, 48, NULL)) == 1);
    unsigned char *der = NULL;
    int dl = i2d_ECDSA_SIG(es, &der);
    md = EVP_MD_CTX_new();
    cr_assert(EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, (EVP_PKEY *)sr_sigkey_evp(pub[1])) == 1);
    cr_assert(EVP_DigestVerify(md, der, (size_t)dl, (const uint8_t *)msg, sizeof msg - 1) == 1);
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    for (size_t i = 0; i < 5; i++) {
        sr_sigkey_free(priv[i]);
        sr_sigkey_free(pub[i]);
    }
    tu_rmrf(dir);
    free(dir);
}

Test(sig, keys_of_no_algorithm_refused_naming_what_they_are)
{
    char *dir = tu_tmpdir("sigbad");
    static const struct {
        const char *name, *want;
    } bad[] = {
        {"rsa1024", "holds an RSA key of 1024 bits (PS256 needs 2048 to 4096); a signing key must be one of ES256, "
                    "ES384, PS256, EdDSA"},
        {"p521", "holds an EC key on curve secp521r1 (ES256 needs P-256, ES384 P-384)"},
        {"x25519", "holds a X25519 key, of no signature algorithm suiro knows"},
    };
    EVP_PKEY *made[] = {EVP_RSA_gen(1024), EVP_EC_gen("P-521"), EVP_PKEY_Q_keygen(NULL, NULL, "X25519")};
    for (size_t i = 0; i < 3; i++) {
        char kp[512], pp[512], err[400] = "";
        sr_sigkey *k = NULL;
        write_key(dir, bad[i].name, made[i], kp, pp);
        cr_assert_eq(sr_sigkey_load(kp, 1, &k, err, sizeof err), SR_ECRYPTO, "%s", bad[i].name);
        cr_assert(strstr(err, kp) && strstr(err, bad[i].want), "%s: '%s'", bad[i].name, err);
        cr_assert_eq(sr_sigkey_load(pp, 0, &k, err, sizeof err), SR_ECRYPTO, "%s public", bad[i].name);
        cr_assert(strstr(err, bad[i].want), "%s: '%s'", bad[i].name, err);
    }
    char err[300];
    sr_sigkey *k = NULL;
    cr_assert_eq(sr_sigkey_generate(SR_ALG_SHA_256, &k), SR_EINVAL);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.pem", dir);
    cr_assert_eq(sr_sigkey_load(missing, 0, &k, err, sizeof err), SR_ENOTFOUND);
    tu_rmrf(dir);
    free(dir);
}

Test(sig, generated_keys_of_each_algorithm)
{
    static const int algs[] = {SR_ALG_ES256, SR_ALG_ES384, SR_ALG_PS256, SR_ALG_EDDSA};
    for (size_t i = 0; i < 4; i++) {
        sr_sigkey *k = NULL;
        cr_assert_eq(sr_sigkey_generate(algs[i], &k), SR_OK);
        cr_assert_eq(sr_sigkey_alg(k), algs[i]);
        uint8_t s[SR_SIG_MAX_LEN];
        size_t n = 0;
        cr_assert_eq(sr_sigkey_sign(k, "m", 1, s, &n), SR_OK);
        cr_assert_eq(sr_sigkey_verify(k, "m", 1, s, n), SR_OK);
        if (algs[i] == SR_ALG_PS256) cr_assert_eq(n, 384); /* 3072 bits */
        cr_assert_eq(sr_sig_evp_md(algs[i]) == NULL, algs[i] == SR_ALG_EDDSA);
        sr_sigkey_free(k);
    }
}
