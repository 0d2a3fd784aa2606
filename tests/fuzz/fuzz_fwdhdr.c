/* tests/fuzz/fuzz_fwdhdr.c -- forwarding's parsers of outside bytes
 * (api/cluster_fwd.h): a header line of an owner's answer
 * (sr_fwd_resp_header: what a peer sends is relayed to a client) and the
 * advertised URL (sr_fwd_advertise_url, sr_fwd_url_host: a heartbeat's, a
 * configuration's). Never a crash or an out-of-bounds read (ASan); a kept
 * header's name is a lower-case token and its value a slice of the line
 * without a control byte; an accepted URL's host is never a wildcard.
 * Corpus: tests/fuzz/fwdhdr/. */
#include "api/cluster_fwd.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    sr_fwd_hdr h;
    int k = sr_fwd_resp_header(p, size, &h);
    if (k < 0 || k > 3) abort();
    if (k >= 2) {
        size_t nl = strlen(h.name);
        if (!nl || nl >= sizeof h.name) abort();
        for (size_t i = 0; i < nl; i++)
            if (isupper((unsigned char)h.name[i]) || h.name[i] == ':') abort();
        if (h.value < p || h.value + h.vlen > p + size) abort();
        for (size_t i = 0; i < h.vlen; i++)
            if (((unsigned char)h.value[i] < 0x20 && h.value[i] != '\t') || h.value[i] == 0x7f) abort();
    }
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    char out[160], err[256], host[160];
    const char *nul = memchr(s, 0, size);
    size_t half = (nul ? (size_t)(nul - s) : size) / 2;
    char *listen = s + half;
    char adv[512];
    size_t al = half < sizeof adv - 1 ? half : sizeof adv - 1;
    memcpy(adv, s, al);
    adv[al] = 0;
    if (!sr_fwd_advertise_url(adv, listen, out, sizeof out, err, sizeof err) && out[0]) {
        if (sr_fwd_url_host(out, host, sizeof host)) abort(); /* an accepted URL has a host */
        if (!host[0] || !strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !strcmp(host, "*")) abort();
    }
    (void)sr_fwd_url_host(s, host, sizeof host);
    free(s);
    return 0;
}
