/* api/pki.c -- see pki.h. */
#include "api/pki.h"

#include "storage/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_pem(const char *path, EVP_PKEY *key, X509 *cert, int mode)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) return SR_EIO;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return SR_EIO;
    }
    int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) ok = 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return SR_EIO;
    }
    return SR_OK;
}

int sr_pki_ensure_platform(const char *dir, int sig_alg, char *err, size_t errlen)
{
    char kp[1100], cp[1100];
    snprintf(kp, sizeof kp, "%s/platform-key.pem", dir);
    snprintf(cp, sizeof cp, "%s/platform-cert.pem", dir);
    struct stat st;
    if (stat(cp, &st) == 0) return SR_OK;
    int rc = SR_EIO;
    sr_sigkey *sk = NULL;
    if (sr_sigkey_generate(sig_alg, &sk)) {
        snprintf(err, errlen, "cannot create the platform key in %s: no %s key", dir,
                 sr_alg_name(sig_alg) ? sr_alg_name(sig_alg) : "signature");
        return SR_ECRYPTO;
    }
    EVP_PKEY *key = sr_sigkey_evp(sk);
    X509 *x = X509_new();
    X509_NAME *name = NULL;
    if (!key || !x) goto done;
    unsigned char serial[16];
    FILE *ur = fopen("/dev/urandom", "rb");
    if (!ur || fread(serial, 1, sizeof serial, ur) != sizeof serial) {
        if (ur) fclose(ur);
        goto done;
    }
    fclose(ur);
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
        BN_free(bn);
        goto done;
    }
    BN_free(bn);
    X509_set_version(x, 2);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"suiro", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"suiro platform", -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, key, sr_sig_evp_md(sig_alg))) goto done; /* EdDSA: no digest */
    if ((rc = write_pem(kp, key, NULL, 0600))) goto done;
    rc = write_pem(cp, NULL, x, 0644);
done:
    if (rc) snprintf(err, errlen, "cannot create the platform key and certificate in %s: %s", dir,
                     errno ? strerror(errno) : "OpenSSL error");
    X509_free(x);
    sr_sigkey_free(sk);
    return rc;
}

int sr_pki_platform_cert(const char *dir, sr_buf *pem)
{
    char cp[1100];
    snprintf(cp, sizeof cp, "%s/platform-cert.pem", dir);
    FILE *f = fopen(cp, "rb");
    if (!f) return errno == ENOENT ? SR_ENOTFOUND : SR_EIO;
    pem->len = 0;
    char buf[4096];
    size_t n;
    int rc = SR_OK;
    while (!rc && (n = fread(buf, 1, sizeof buf, f)) > 0) rc = sr_buf_append(pem, buf, n);
    if (!rc && ferror(f)) rc = SR_EIO;
    fclose(f);
    if (!rc && pem->len > 65536) rc = SR_EINVAL;
    return rc;
}
