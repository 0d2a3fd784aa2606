/* tests/api/test_sigcheck.c -- data protection between apps and gateways
 * (R-SE-3, api/sigcheck.h, docs/signatures.md): the verifier against real
 * certificates made here with OpenSSL for every signature row of the table
 * (ES256, ES384, PS256, EdDSA): a good signature verifies; one byte of the
 * signed bytes changed, a signature of the same bytes re-spaced (what a
 * canonicaliser would do), a signAlg not the key's, an unknown signAlg and
 * a signature that is not base64url are E5001; an expired certificate, one
 * not yet valid and a serial that is not the registered certificate's are
 * E5003. Against a real engine (tests/support/brokertest.h): the sender's
 * registered certificate verifies; a revocation (registry SR_RG_REVOKED, as
 * the admin API writes it) is E5003 at once and its withdrawal verifies
 * again; an unknown certId, another principal's certId, a principal without
 * a certificate are E5003; a protection that is not three strings E1001. */
#include <criterion/criterion.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/sigcheck.h"
#include "brokertest.h"
#include "engine/records.h"
#include "storage/crypto.h"

/* a certificate of key k, serial, valid from now + from_s to now + to_s, as PEM */
static char *make_cert(sr_sigkey *k, long serial, long from_s, long to_s)
{
    EVP_PKEY *key = sr_sigkey_evp(k);
    X509 *x = X509_new();
    cr_assert(x);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), from_s);
    X509_gmtime_adj(X509_getm_notAfter(x), to_s);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"G1", -1, -1, 0);
    X509_set_issuer_name(x, name);
    cr_assert(X509_sign(x, key, sr_sig_evp_md(sr_sigkey_alg(k))));
    BIO *b = BIO_new(BIO_s_mem());
    cr_assert(PEM_write_bio_X509(b, x));
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(b);
    X509_free(x);
    return out;
}

/* base64url of k's signature of msg */
static void sign(sr_sigkey *k, const char *msg, char *out)
{
    uint8_t raw[SR_SIG_MAX_LEN];
    size_t n = 0;
    cr_assert_eq(sr_sigkey_sign(k, msg, strlen(msg), raw, &n), SR_OK);
    sr_base64(raw, n, out, 1);
}

static int64_t now_ms(void) { return (int64_t)time(NULL) * 1000; }

static const char BODY[] = "{ \"requestId\" : \"Q1\",\n  \"values\":[{\"dataId\":\"N\",\"value\":1.50}] }";
static const char CANON[] = "{\"requestId\":\"Q1\",\"values\":[{\"dataId\":\"N\",\"value\":1.5}]}";

static const int ALGS[] = {SR_ALG_ES256, SR_ALG_ES384, SR_ALG_PS256, SR_ALG_EDDSA};

static sr_wire check_pem(const char *pem, const char *serial, const char *alg, const char *sig, const char *msg)
{
    char why[300] = "";
    sr_wire w = sr_sig_verify_cert(pem, strlen(pem), serial, alg, sig, msg, strlen(msg), now_ms(), why, sizeof why);
    cr_assert(w == SR_WIRE_OK || why[0], "a refusal names its reason");
    return w;
}

Test(sigcheck, every_table_algorithm)
{
    for (size_t i = 0; i < sizeof ALGS / sizeof *ALGS; i++) {
        sr_sigkey *k = NULL;
        cr_assert_eq(sr_sigkey_generate(ALGS[i], &k), SR_OK);
        const char *alg = sr_alg_name(ALGS[i]), *other = sr_alg_name(ALGS[(i + 1) % 4]);
        char *pem = make_cert(k, 0x1a, -60, 3600);
        char sig[1100], bad[1100];
        sign(k, BODY, sig);
        cr_assert_eq(check_pem(pem, "1A", alg, sig, BODY), SR_WIRE_OK, "%s verifies", alg);
        cr_assert_eq(check_pem(pem, "01a", alg, sig, BODY), SR_WIRE_OK, "%s: the serial's case and zeros", alg);
        cr_assert_eq(check_pem(pem, NULL, alg, sig, BODY), SR_WIRE_OK);
        /* one byte of the signed bytes changed */
        char *m = strdup(BODY);
        m[strlen(m) - 4] = '6';
        cr_assert_eq(check_pem(pem, "1A", alg, sig, m), SR_WIRE_SIGNATURE, "%s: a changed byte", alg);
        free(m);
        /* the canonical form of the same JSON is other bytes */
        cr_assert_eq(check_pem(pem, "1A", alg, sig, CANON), SR_WIRE_SIGNATURE, "%s: re-spaced", alg);
        /* the signature of another message */
        sign(k, CANON, bad);
        cr_assert_eq(check_pem(pem, "1A", alg, bad, BODY), SR_WIRE_SIGNATURE);
        cr_assert_eq(check_pem(pem, "1A", alg, bad, CANON), SR_WIRE_OK);
        /* signAlg not the key's, not of the table, a signature not base64url */
        cr_assert_eq(check_pem(pem, "1A", other, sig, BODY), SR_WIRE_SIGNATURE, "%s named %s", alg, other);
        cr_assert_eq(check_pem(pem, "1A", "HS256", sig, BODY), SR_WIRE_SIGNATURE);
        cr_assert_eq(check_pem(pem, "1A", alg, "not*base64", BODY), SR_WIRE_SIGNATURE);
        cr_assert_eq(check_pem(pem, "1A", alg, "", BODY), SR_WIRE_SIGNATURE);
        cr_assert_eq(check_pem(pem, "1A", alg, "AAAAA", BODY), SR_WIRE_SIGNATURE); /* 5 chars: no whole bytes */
        char padded[1100];
        snprintf(padded, sizeof padded, "%s==", sig);
        cr_assert_eq(check_pem(pem, "1A", alg, padded, BODY), strlen(sig) % 4 == 2 ? SR_WIRE_OK : SR_WIRE_SIGNATURE,
                     "%s: base64 padding is accepted where it belongs", alg);
        /* a certificate the platform does not have (another serial) */
        cr_assert_eq(check_pem(pem, "1B", alg, sig, BODY), SR_WIRE_CERT);
        free(pem);
        /* expired, not yet valid: E5003 even with a good signature */
        pem = make_cert(k, 0x1a, -7200, -3600);
        cr_assert_eq(check_pem(pem, "1A", alg, sig, BODY), SR_WIRE_CERT, "%s: expired", alg);
        free(pem);
        pem = make_cert(k, 0x1a, 3600, 7200);
        cr_assert_eq(check_pem(pem, "1A", alg, sig, BODY), SR_WIRE_CERT, "%s: not yet valid", alg);
        free(pem);
        sr_sigkey_free(k);
    }
    cr_assert_eq(check_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", NULL, "ES256", "AAAA",
                           BODY),
                 SR_WIRE_CERT);
}

Test(sigcheck, canonical_ids)
{
    char out[100];
    cr_assert_eq(sr_sig_canon_id("GW-0001#001a", out, sizeof out), 0);
    cr_assert_str_eq(out, "GW-0001#1A");
    cr_assert_eq(sr_sig_canon_id("GW-0001#0", out, sizeof out), 0);
    cr_assert_str_eq(out, "GW-0001#0");
    cr_assert_eq(sr_sig_canon_id("GW-0001", out, sizeof out), -1);
    cr_assert_eq(sr_sig_canon_id("#1", out, sizeof out), -1);
    cr_assert_eq(sr_sig_canon_id("G#xyz", out, sizeof out), -1);
    cr_assert_eq(sr_sig_canon_id("G#", out, sizeof out), -1);
}

/* ---- against the registry ----------------------------------------------------- */

static const char *SHEET = "#suiro-setup-sheet v1\n"
                           "[operator]\nid,name\nsg,Signatures\n\n"
                           "[gateways]\nid,name,secret\nG1,g1,sigcheck-g1-secret-01\nG2,g2,sigcheck-g2-secret-01\n\n"
                           "[apps]\nid,name,secret,push_url\nA1,a1,sigcheck-a1-secret-01,\n";

static bt t;
static void setup(void) { cr_assert_eq(bt_open(&t, SHEET, "sg", NULL, 0), SR_OK); }
static void teardown(void) { bt_close(&t); }

static void submit(int built, sr_buf *b)
{
    cr_assert_eq(built, SR_OK);
    sr_slice sl = {b->data, b->len};
    sr_result res;
    memset(&res, 0, sizeof res);
    int rc = sr_engine_submit_wait(t.eng, &sl, 1, &res);
    cr_assert_eq(rc ? rc : res.rc, SR_OK, "%s", res.err.msg);
    sr_buf_release(b);
}

static const sr_cmd_env ENV = {"sg", "admin", SR_ACTOR_USER, NULL, "127.0.0.1"};

static void set_cert(sr_reg_kind kind, const char *id, const char *pem)
{
    sr_rec r = SR_REC_INIT;
    sr_reg_entry re;
    cr_assert_eq(sr_read_registry(t.eng, "sg", kind, id, &r, &re), SR_OK);
    re.cert_pem = pem;
    sr_buf b;
    sr_buf_init(&b);
    submit(sr_cmd_registry_put(&ENV, &re, &b), &b);
    sr_rec_close(&r);
}

static sr_wire check(int kind, const char *sender, const char *alg, const char *cid, const char *sig, const char *msg)
{
    json_t *p = json_pack("{s:s,s:s,s:s}", "signAlg", alg, "certId", cid, "signature", sig);
    char why[300] = "";
    sr_wire w = sr_sig_check(t.eng, "sg", kind, sender, p, msg, strlen(msg), now_ms(), why, sizeof why);
    json_decref(p);
    return w;
}

Test(sigcheck, registry, .init = setup, .fini = teardown, .timeout = 60)
{
    sr_sigkey *k = NULL;
    cr_assert_eq(sr_sigkey_generate(SR_ALG_ES256, &k), SR_OK);
    char *pem = make_cert(k, 0x2b, -60, 3600), sig[200];
    sign(k, BODY, sig);
    /* no certificate registered yet */
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#2B", sig, BODY), SR_WIRE_CERT);
    set_cert(SR_RG_GATEWAY, "G1", pem);
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#2B", sig, BODY), SR_WIRE_OK);
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#2b", sig, BODY), SR_WIRE_OK);
    /* unknown certIds: another serial, another principal's, no serial */
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#2C", sig, BODY), SR_WIRE_CERT);
    cr_assert_eq(check(SR_RG_GATEWAY, "G2", "ES256", "G1#2B", sig, BODY), SR_WIRE_CERT, "G2 signs as G1");
    cr_assert_eq(check(SR_RG_GATEWAY, "G2", "ES256", "G2#2B", sig, BODY), SR_WIRE_CERT, "G2 has no certificate");
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1", sig, BODY), SR_WIRE_CERT);
    cr_assert_eq(check(SR_RG_APP, "G1", "ES256", "G1#2B", sig, BODY), SR_WIRE_CERT, "no app G1");
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#2B", sig, CANON), SR_WIRE_SIGNATURE);
    /* the same certificate registered for app A1 verifies A1's messages */
    set_cert(SR_RG_APP, "A1", pem);
    cr_assert_eq(check(SR_RG_APP, "A1", "ES256", "A1#2B", sig, BODY), SR_WIRE_OK);
    /* revoked (as api/admin_sig.c writes it): E5003 at once; withdrawn: verifies */
    sr_reg_entry rv = {.kind = SR_RG_REVOKED, .id = "G1#2B", .name = "key leaked", .revoked_ms = now_ms()};
    sr_buf b;
    sr_buf_init(&b);
    submit(sr_cmd_registry_put(&ENV, &rv, &b), &b);
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#2B", sig, BODY), SR_WIRE_CERT, "revoked");
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#002b", sig, BODY), SR_WIRE_CERT, "revoked, any spelling");
    cr_assert_eq(check(SR_RG_APP, "A1", "ES256", "A1#2B", sig, BODY), SR_WIRE_OK, "only G1's is revoked");
    sr_buf_init(&b);
    submit(sr_cmd_registry_delete(&ENV, SR_RG_REVOKED, "G1#2B", &b), &b);
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#2B", sig, BODY), SR_WIRE_OK, "withdrawn");
    /* a protection that is not three strings */
    json_t *p = json_pack("{s:s,s:i}", "signAlg", "ES256", "certId", 1);
    char why[300];
    cr_assert_eq(sr_sig_check(t.eng, "sg", SR_RG_GATEWAY, "G1", p, BODY, strlen(BODY), now_ms(), why, sizeof why),
                 SR_WIRE_PARAM);
    json_decref(p);
    free(pem);
    sr_sigkey_free(k);
}

/* The parsed-certificate cache (api/sigcheck.h invariant 4): a certificate
 * is parsed once and then served from the cache; a certificate replaced in
 * the registry by another key of the same serial is not used after the
 * change (the old key's signature no longer verifies, the new key's does);
 * a revocation of the cached certificate is E5003 at once; the validity
 * dates of a cached certificate are compared with the time of each call. */
Test(sigcheck, cache_never_stale, .init = setup, .fini = teardown, .timeout = 60)
{
    sr_sigkey *k1 = NULL, *k2 = NULL;
    cr_assert_eq(sr_sigkey_generate(SR_ALG_ES256, &k1), SR_OK);
    cr_assert_eq(sr_sigkey_generate(SR_ALG_ES256, &k2), SR_OK);
    char *pem1 = make_cert(k1, 0x3c, -60, 3600), *pem2 = make_cert(k2, 0x3c, -60, 3600), sig1[200], sig2[200];
    sign(k1, BODY, sig1);
    sign(k2, BODY, sig2);
    sr_sig_cache_clear();
    uint64_t h0, m0, h1, m1;
    sr_sig_cache_stats(&h0, &m0);
    set_cert(SR_RG_GATEWAY, "G1", pem1);
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#3C", sig1, BODY), SR_WIRE_OK);
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#3C", sig1, BODY), SR_WIRE_OK);
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#3C", sig1, CANON), SR_WIRE_SIGNATURE, "cached: a changed byte");
    sr_sig_cache_stats(&h1, &m1);
    cr_assert_eq(m1 - m0, 1, "parsed once");
    cr_assert_eq(h1 - h0, 2, "then served from the cache");
    /* replaced: same certId, another key */
    set_cert(SR_RG_GATEWAY, "G1", pem2);
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#3C", sig1, BODY), SR_WIRE_SIGNATURE, "the old key after a replacement");
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#3C", sig2, BODY), SR_WIRE_OK, "the new key");
    /* replaced back: the first is still cached and right again */
    set_cert(SR_RG_GATEWAY, "G1", pem1);
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#3C", sig2, BODY), SR_WIRE_SIGNATURE);
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#3C", sig1, BODY), SR_WIRE_OK);
    /* revoked while cached */
    sr_reg_entry rv = {.kind = SR_RG_REVOKED, .id = "G1#3C", .name = "key leaked", .revoked_ms = now_ms()};
    sr_buf b;
    sr_buf_init(&b);
    submit(sr_cmd_registry_put(&ENV, &rv, &b), &b);
    cr_assert_eq(check(SR_RG_GATEWAY, "G1", "ES256", "G1#3C", sig1, BODY), SR_WIRE_CERT, "revoked while cached");
    /* validity per call: the cached certificate at a time after its notAfter */
    char why[300];
    cr_assert_eq(sr_sig_verify_cert(pem1, strlen(pem1), "3C", "ES256", sig1, BODY, strlen(BODY), now_ms(), why,
                                    sizeof why),
                 SR_WIRE_OK);
    cr_assert_eq(sr_sig_verify_cert(pem1, strlen(pem1), "3C", "ES256", sig1, BODY, strlen(BODY),
                                    now_ms() + 7200 * 1000, why, sizeof why),
                 SR_WIRE_CERT, "expired since it was cached");
    cr_assert(strstr(why, "expired"), "%s", why);
    /* more certificates than the cache holds: each still verifies right */
    for (int i = 0; i < 70; i++) {
        sr_sigkey *k = NULL;
        cr_assert_eq(sr_sigkey_generate(SR_ALG_EDDSA, &k), SR_OK);
        char *p = make_cert(k, 0x100 + i, -60, 3600), s[200];
        sign(k, BODY, s);
        cr_assert_eq(sr_sig_verify_cert(p, strlen(p), NULL, "EdDSA", s, BODY, strlen(BODY), now_ms(), why, sizeof why),
                     SR_WIRE_OK, "%d: %s", i, why);
        cr_assert_eq(sr_sig_verify_cert(p, strlen(p), NULL, "EdDSA", sig1, BODY, strlen(BODY), now_ms(), why, sizeof why),
                     SR_WIRE_SIGNATURE);
        free(p);
        sr_sigkey_free(k);
    }
    cr_assert_eq(sr_sig_verify_cert(pem2, strlen(pem2), "3C", "ES256", sig2, BODY, strlen(BODY), now_ms(), why,
                                    sizeof why),
                 SR_WIRE_OK, "an evicted certificate is parsed again");
    free(pem1);
    free(pem2);
    sr_sigkey_free(k1);
    sr_sigkey_free(k2);
}
