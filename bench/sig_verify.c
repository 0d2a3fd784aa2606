/*
 * bench/sig_verify.c -- the cost of one signed message's verification
 * (api/sigcheck.c sr_sig_verify_cert, docs/signatures.md "Cost") for every
 * signature algorithm of the table (ES256, ES384, PS256, EdDSA): a key and
 * a self-signed certificate made here with OpenSSL, one GW-IF body signed,
 * then R verifications of it
 *   "parsed": with the parsed-certificate cache emptied before each (the
 *             certificate's PEM parsed per message, as before the cache);
 *   "cached": with the certificate parsed once and kept (the cache's hit).
 * Verification: every call's verdict is OK, and the same body with one byte
 * changed is E5001 through the cache. No timing is checked.
 *
 *   "loop":   what the network loop's thread does per signed GW-IF message
 *             since issue #18 (api/server.c check_async, gwif_http.c): the
 *             protection test (sr_gw_may_be_signed over the whole envelope)
 *             and the payload's copy for the worker queue (loop_share; the
 *             verification itself runs on the worker). Before, the loop ran
 *             the parse and the verification ("cached" and more).
 *
 *   "control_before", "control_after": what the loop's thread does per
 *             signed AP-IF control request (api/apif_http.c control_values)
 *             once its JSON is parsed and checked: before, the signed
 *             bytes' span (sr_json_member_span) and the verification
 *             (sr_sig_verify_cert through the cache; the registry reads of
 *             sr_sig_check came on top); after, the span and the signed
 *             bytes' copy for the worker queue (control_share_after; the
 *             verification runs on the worker, sr_sig_check_now).
 *
 *   "unsigned": the same test on an unsigned message of 100 values (the
 *             memmem every unsigned message pays on the loop).
 *
 * usage: sig_verify [--reps R] [--alg ES256|ES384|PS256|EdDSA]
 *                   [--only parsed|cached|loop|control_before|control_after|unsigned]
 * (--alg, --only: one algorithm, one of the loops; for a count of
 * instructions under callgrind --toggle-collect=sr_sig_verify_cert, or
 * --toggle-collect=loop_share for "loop", control_share_before / _after for
 * "control_before" / "control_after")
 * Prints one JSON line:
 *   {"bench":"sig_verify","reps":R,"ES256":{"parsed_us":..,"cached_us":..},..,
 *    "verify":"ok"|"FAILED"}
 */
#include "api/gwif_json.h"
#include "api/sigcheck.h"
#include "codecs/jsonlex.h"
#include "storage/crypto.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *make_cert(sr_sigkey *k)
{
    EVP_PKEY *key = sr_sigkey_evp(k);
    X509 *x = X509_new();
    if (!x) return NULL;
    ASN1_INTEGER_set(X509_get_serialNumber(x), 0x1A);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"GW-0001", -1, -1, 0);
    X509_set_issuer_name(x, name);
    char *out = NULL;
    BIO *b = BIO_new(BIO_s_mem());
    if (X509_sign(x, key, sr_sig_evp_md(sr_sigkey_alg(k))) && b && PEM_write_bio_X509(b, x)) {
        char *p;
        long n = BIO_get_mem_data(b, &p);
        out = strndup(p, (size_t)n);
    }
    BIO_free(b);
    X509_free(x);
    return out;
}

/* the loop's share of a signed message (what check_async does before the
 * worker takes it): the protection test and the copy; 1 if it goes to a worker */
__attribute__((noinline)) static int loop_share(const char *env, size_t n)
{
    if (!sr_gw_may_be_signed(env, n)) return 0;
    char *copy = malloc(n);
    if (!copy) return 0;
    memcpy(copy, env, n);
    __asm__ volatile("" : : "r"(copy) : "memory");
    free(copy);
    return 1;
}

/* the loop's share of a signed AP-IF control request, before issue #18's
 * move (the span and the verification) and after (the span and the copy);
 * 1 if it verified / went to a worker */
typedef struct ctl_ctx {
    const char *pem, *alg, *sig;
    int64_t now;
} ctl_ctx;
__attribute__((noinline)) static int control_share_before(const ctl_ctx *x, const char *req, size_t n)
{
    size_t off, len;
    char why[300];
    if (sr_json_member_span(req, n, "value", &off, &len)) return 0;
    return sr_sig_verify_cert(x->pem, strlen(x->pem), "1A", x->alg, x->sig, req + off, len, x->now, why, sizeof why) ==
           SR_WIRE_OK;
}
__attribute__((noinline)) static int control_share_after(const char *req, size_t n)
{
    size_t off, len;
    if (sr_json_member_span(req, n, "value", &off, &len)) return 0;
    char *copy = malloc(len ? len : 1);
    if (!copy) return 0;
    memcpy(copy, req + off, len);
    __asm__ volatile("" : : "r"(copy) : "memory");
    free(copy);
    return 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int reps = 500;
    const char *only_alg = NULL, *only = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--alg")) only_alg = argv[i + 1];
        else if (!strcmp(argv[i], "--only")) only = argv[i + 1];
    }
    if (reps < 1) reps = 1;
    static const int ALGS[] = {SR_ALG_ES256, SR_ALG_ES384, SR_ALG_PS256, SR_ALG_EDDSA};
    static const char BODY[] = "{\"values\":[{\"dataId\":\"P00001\",\"timestamp\":\"2026-12-07T00:00:00Z\",\"value\":1.5}]}";
    int ok = 1;
    printf("{\"bench\":\"sig_verify\",\"reps\":%d", reps);
    for (size_t a = 0; a < sizeof ALGS / sizeof ALGS[0]; a++) {
        if ((only_alg && strcmp(only_alg, sr_alg_name(ALGS[a]))) || !strcmp(only, "unsigned")) continue;
        sr_sigkey *k = NULL;
        if (sr_sigkey_generate(ALGS[a], &k)) return 1;
        char *pem = make_cert(k);
        uint8_t raw[SR_SIG_MAX_LEN];
        size_t n = 0;
        char sig[SR_SIG_MAX_LEN * 2], why[300];
        if (!pem || sr_sigkey_sign(k, BODY, strlen(BODY), raw, &n)) return 1;
        sr_base64(raw, n, sig, 1);
        const char *alg = sr_alg_name(ALGS[a]);
        /* after the key's generation: its certificate is valid from 60 s before
         * (an RSA key made under valgrind may take longer than that) */
        int64_t now = (int64_t)time(NULL) * 1000;
        double t0 = now_s();
        for (int r = 0; r < reps && (!only[0] || !strcmp(only, "parsed")); r++) {
            sr_sig_cache_clear();
            ok &= sr_sig_verify_cert(pem, strlen(pem), "1A", alg, sig, BODY, strlen(BODY), now, why, sizeof why) ==
                  SR_WIRE_OK;
        }
        double t1 = now_s();
        if (!strcmp(only, "parsed")) sr_sig_cache_clear();
        for (int r = 0; r < reps && (!only[0] || !strcmp(only, "cached")); r++)
            ok &= sr_sig_verify_cert(pem, strlen(pem), "1A", alg, sig, BODY, strlen(BODY), now, why, sizeof why) ==
                  SR_WIRE_OK;
        double t2 = now_s();
        char env[1024];
        int en = snprintf(env, sizeof env,
                          "{\"header\":{\"messageType\":\"GW_MEASUREMENTS\",\"messageId\":\"m1\",\"timestamp\":"
                          "\"2026-12-07T00:00:00Z\"},\"body\":%s,\"protection\":{\"signAlg\":\"%s\",\"certId\":"
                          "\"GW-0001#1A\",\"signature\":\"%s\"}}", BODY, alg, sig);
        for (int r = 0; r < reps && (!only[0] || !strcmp(only, "loop")); r++)
            ok &= loop_share(env, (size_t)en) == 1;
        /* an AP-IF control request signing its value "42.5" */
        uint8_t craw[SR_SIG_MAX_LEN];
        size_t cn = 0;
        char csig[SR_SIG_MAX_LEN * 2], creq[1024];
        if (sr_sigkey_sign(k, "42.5", 4, craw, &cn)) return 1;
        sr_base64(craw, cn, csig, 1);
        int crn = snprintf(creq, sizeof creq, "{\"dataId\":\"P007\",\"value\":42.5,\"timeoutMs\":5000,\"protection\":"
                           "{\"signAlg\":\"%s\",\"certId\":\"APP001#1A\",\"signature\":\"%s\"}}", alg, csig);
        ctl_ctx cx = {pem, alg, csig, now};
        double t3 = now_s();
        for (int r = 0; r < reps && (!only[0] || !strcmp(only, "control_before")); r++)
            ok &= control_share_before(&cx, creq, (size_t)crn) == 1;
        double t4 = now_s();
        for (int r = 0; r < reps && (!only[0] || !strcmp(only, "control_after")); r++)
            ok &= control_share_after(creq, (size_t)crn) == 1;
        double t5 = now_s();
        ok &= loop_share(BODY, strlen(BODY)) == 0; /* unsigned: stays inline */
        char bad[sizeof BODY];
        memcpy(bad, BODY, sizeof BODY);
        bad[strlen(bad) - 4] ^= 1;
        ok &= sr_sig_verify_cert(pem, strlen(pem), "1A", alg, sig, bad, strlen(bad), now, why, sizeof why) ==
              SR_WIRE_SIGNATURE;
        printf(",\"%s\":{\"parsed_us\":%.1f,\"cached_us\":%.1f,\"loop_us\":%.3f,\"envelope_bytes\":%d,"
               "\"control_loop_before_us\":%.1f,\"control_loop_after_us\":%.3f,\"control_bytes\":%d}",
               alg, (t1 - t0) * 1e6 / reps, (t2 - t1) * 1e6 / reps, (t3 - t2) * 1e6 / reps, en, (t4 - t3) * 1e6 / reps,
               (t5 - t4) * 1e6 / reps, crn);
        free(pem);
        sr_sigkey_free(k);
    }
    /* an unsigned message of 100 values: what it pays on the loop for the test (memmem) */
    if (!only[0] || !strcmp(only, "unsigned")) {
        static char big[16384];
        int bn = snprintf(big, sizeof big, "{\"header\":{\"messageType\":\"GW_MEASUREMENTS\",\"messageId\":\"u1\","
                                           "\"timestamp\":\"2026-12-07T00:00:00Z\"},\"body\":{\"values\":[");
        for (int v = 0; v < 100; v++)
            bn += snprintf(big + bn, sizeof big - (size_t)bn, "%s{\"dataId\":\"P%05d\",\"timestamp\":"
                           "\"2026-12-07T00:00:%02d.000Z\",\"value\":%d.5}", v ? "," : "", v, v % 60, v);
        bn += snprintf(big + bn, sizeof big - (size_t)bn, "]}}");
        double u0 = now_s();
        for (int r = 0; r < reps; r++) ok &= loop_share(big, (size_t)bn) == 0;
        printf(",\"unsigned_100\":{\"loop_us\":%.3f,\"envelope_bytes\":%d}", (now_s() - u0) * 1e6 / reps, bn);
    }
    printf(",\"verify\":\"%s\"}\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
