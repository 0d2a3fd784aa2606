/* tests/api/test_config.c -- the configuration table (api/config.h).
 * Table-driven over every key: its default (against docs/configuration.md's,
 * so a default changed in the table alone fails), min and max accepted,
 * min - 1 and max + 1 refused naming the section, the key and the range;
 * enumerated values (each allowed word, anything else refused naming the
 * words); strings up to their field; unknown keys and sections; a file's bad
 * line named with the file, the line and the key; the checks between keys;
 * the INI round trip: --print-config's text loaded over the defaults gives
 * the same configuration. The docs check is tests/api/test_config_docs.c. */
#include "api/config.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The defaults are docs/configuration.md's (`| `[section]` | `key` |
 * default | range | meaning |`, "(none)" the empty default): a default
 * changed in the table alone fails here, and a new key needs its row in
 * the docs, nothing in this file. */
#define DOC SR_TEST_DATA "/../../docs/configuration.md"

/* the value of row k in c, as text */
static void value_of(const sr_config *c, const sr_config_key *k, char *buf, size_t len)
{
    const char *f = (const char *)c + k->off;
    if (k->type == SR_CFG_U32) {
        uint32_t x;
        memcpy(&x, f, sizeof x);
        snprintf(buf, len, "%u", x);
    } else {
        snprintf(buf, len, "%s", f);
    }
}

static int set(sr_config *c, const sr_config_key *k, const char *v, char *err, size_t len)
{
    err[0] = 0;
    return sr_config_set(c, k->section, k->key, v, err, len);
}

Test(config, every_key_has_its_default)
{
    sr_config c;
    sr_config_defaults(&c);
    FILE *f = fopen(DOC, "r");
    cr_assert(f, "cannot open %s", DOC);
    int *seen = calloc(sr_config_nkeys, sizeof *seen);
    cr_assert(seen);
    char line[4096];
    size_t rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "| `[", 4)) continue; /* rows of the keys' table start with a section */
        char sec[64], key[128], def[1100];
        cr_assert(!tu_md_cell(line, 0, sec, sizeof sec) && !tu_md_cell(line, 1, key, sizeof key) &&
                      !tu_md_cell(line, 2, def, sizeof def),
                  "not a row: %s", line);
        size_t sl = strlen(sec);
        cr_assert(sl > 2 && sec[0] == '[' && sec[sl - 1] == ']', "section cell '%s'", sec);
        sec[sl - 1] = 0;
        rows++;
        const sr_config_key *k = sr_config_find(sec + 1, key);
        cr_assert(k, "docs/configuration.md: [%s] %s is not in the table", sec + 1, key);
        seen[k - sr_config_keys]++;
        if (!strcmp(def, "(none)")) def[0] = 0;
        char v[1100];
        value_of(&c, k, v, sizeof v);
        cr_expect_str_eq(v, def, "[%s] %s: the struct's default against the docs'", k->section, k->key);
        cr_expect_str_eq(k->def, def, "[%s] %s: the table's default against the docs'", k->section, k->key);
    }
    fclose(f);
    for (size_t i = 0; i < sr_config_nkeys; i++)
        cr_expect_eq(seen[i], 1, "[%s] %s: documented %d times", sr_config_keys[i].section, sr_config_keys[i].key,
                     seen[i]);
    free(seen);
    cr_assert_eq(rows, sr_config_nkeys, "the docs have %zu keys, the table %zu", rows, sr_config_nkeys);
    /* and through the struct's names, as the server reads them */
    cr_assert_eq(c.queue_max, 65536);
    cr_assert_eq(c.group_max, 4096);
    cr_assert_eq(c.http_body_budget, 128u << 20);
    cr_assert_str_eq(c.log_level, "info");
    cr_assert_str_eq(c.tls_client_cert, "optional");
    char err[256];
    cr_assert_eq(sr_config_check(&c, err, sizeof err), 0, "%s", err);
}

Test(config, rows_are_unique_and_sections_contiguous)
{
    for (size_t i = 0; i < sr_config_nkeys; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        cr_assert_eq(sr_config_find(k->section, k->key), k, "[%s] %s twice", k->section, k->key);
        cr_assert(k->doc && k->doc[0], "[%s] %s has no doc", k->section, k->key);
        if (k->type == SR_CFG_U32) cr_assert_leq(k->min, k->max, "[%s] %s", k->section, k->key);
        /* a section, once left, does not come back (one [section] in --print-config) */
        if (i && strcmp(k->section, sr_config_keys[i - 1].section))
            for (size_t j = 0; j + 1 < i; j++)
                cr_assert_str_neq(sr_config_keys[j].section, k->section, "[%s] is split", k->section);
    }
}

Test(config, numbers_in_range_accepted_out_of_range_refused_naming_the_key)
{
    int n = 0;
    for (size_t i = 0; i < sr_config_nkeys; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        if (k->type != SR_CFG_U32) continue;
        n++;
        sr_config c;
        sr_config_defaults(&c);
        char err[512], v[32], got[32];
        uint32_t bounds[2] = {k->min, k->max};
        for (int b = 0; b < 2; b++) {
            snprintf(v, sizeof v, "%u", bounds[b]);
            cr_assert_eq(set(&c, k, v, err, sizeof err), 0, "[%s] %s = %s: %s", k->section, k->key, v, err);
            value_of(&c, k, got, sizeof got);
            cr_assert_str_eq(got, v, "[%s] %s", k->section, k->key);
        }
        char before[32];
        value_of(&c, k, before, sizeof before);
        const char *bad[4];
        char lo[32], hi[32], mention[64];
        int nb = 0;
        if (k->min > 0) {
            snprintf(lo, sizeof lo, "%u", k->min - 1);
            bad[nb++] = lo;
        }
        snprintf(hi, sizeof hi, "%llu", (unsigned long long)k->max + 1);
        bad[nb++] = hi;
        bad[nb++] = "12x";
        bad[nb++] = "-1";
        snprintf(mention, sizeof mention, "[%s] %s", k->section, k->key);
        for (int b = 0; b < nb; b++) {
            cr_assert_eq(set(&c, k, bad[b], err, sizeof err), -1, "[%s] %s = %s accepted", k->section, k->key, bad[b]);
            cr_assert(strstr(err, mention), "'%s' does not name %s", err, mention);
            char range[64];
            sr_config_range(k, range, sizeof range);
            cr_assert(strstr(err, range), "'%s' does not give the range %s", err, range);
            value_of(&c, k, got, sizeof got);
            cr_assert_str_eq(got, before, "a refused value changed [%s] %s", k->section, k->key);
        }
    }
    cr_assert_geq(n, 45);
}

Test(config, enumerated_values)
{
    static const struct {
        const char *section, *key, *words[5];
    } ENUMS[] = {
        {"engine", "sync", {"always", "interval", "none"}},
        {"mqtt", "tls_client_cert", {"none", "optional", "require"}},
        {"http", "tls_client_cert", {"none", "optional", "require"}},
        {"log", "level", {"debug", "info", "warn", "error"}},
        {"notify", "starttls", {"none", "try", "require"}},
        {"retention", "drop_segments", {"true", "false"}},
        {"audit", "reads", {"on", "off"}},
    };
    int nenum = 0;
    for (size_t i = 0; i < sr_config_nkeys; i++) nenum += sr_config_keys[i].type == SR_CFG_ENUM;
    cr_assert_eq(nenum, (int)(sizeof ENUMS / sizeof ENUMS[0]), "an enumerated key without a row here");
    for (size_t i = 0; i < sizeof ENUMS / sizeof ENUMS[0]; i++) {
        const sr_config_key *k = sr_config_find(ENUMS[i].section, ENUMS[i].key);
        cr_assert(k && k->type == SR_CFG_ENUM, "[%s] %s", ENUMS[i].section, ENUMS[i].key);
        sr_config c;
        sr_config_defaults(&c);
        char err[512], got[32];
        for (int w = 0; ENUMS[i].words[w]; w++) {
            cr_assert_eq(set(&c, k, ENUMS[i].words[w], err, sizeof err), 0, "%s", err);
            value_of(&c, k, got, sizeof got);
            cr_assert_str_eq(got, ENUMS[i].words[w]);
            cr_assert(strstr(err, "") && !err[0]);
        }
        const char *bad[] = {"foo", "", "INFO", "Always", "none ", "requir", "optionalx"};
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            cr_assert_eq(set(&c, k, bad[b], err, sizeof err), -1, "[%s] %s = '%s' accepted", k->section, k->key,
                         bad[b]);
            cr_assert(strstr(err, k->key) && strstr(err, k->section), "%s", err);
            for (int w = 0; ENUMS[i].words[w]; w++)
                cr_assert(strstr(err, ENUMS[i].words[w]), "'%s' does not list %s", err, ENUMS[i].words[w]);
        }
    }
}

Test(config, strings_up_to_their_field)
{
    for (size_t i = 0; i < sr_config_nkeys; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        if (k->type != SR_CFG_STR) continue;
        sr_config c;
        sr_config_defaults(&c);
        char *v = malloc(k->size + 1), err[512], got[1100];
        memset(v, 'a', k->size);
        v[k->size] = 0;
        cr_assert_eq(set(&c, k, v, err, sizeof err), -1, "[%s] %s: %zu bytes accepted", k->section, k->key, k->size);
        cr_assert(strstr(err, k->key), "%s", err);
        v[k->size - 1] = 0;
        cr_assert_eq(set(&c, k, v, err, sizeof err), 0, "%s", err);
        value_of(&c, k, got, sizeof got);
        cr_assert_str_eq(got, v);
        cr_assert_eq(set(&c, k, "", err, sizeof err), 0, "%s", err);
        free(v);
    }
}

Test(config, unknown_keys_and_sections_refused)
{
    sr_config c;
    sr_config_defaults(&c);
    char err[512];
    cr_assert_eq(sr_config_set(&c, "mqtt", "listn", "x", err, sizeof err), -1);
    cr_assert_str_eq(err, "unknown key 'listn' in section [mqtt]");
    cr_assert_eq(sr_config_set(&c, "mqqt", "listen", "x", err, sizeof err), -1);
    cr_assert(strstr(err, "unknown section [mqqt]"), "%s", err);
    /* a key of another section */
    cr_assert_eq(sr_config_set(&c, "engine", "max_packet", "2048", err, sizeof err), -1);
    cr_assert(strstr(err, "unknown key 'max_packet'"), "%s", err);
    cr_assert_eq(sr_config_set(&c, "", "data_dir", "x", err, sizeof err), -1);
}

static char *write_file(const char *dir, const char *name, const char *text)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    return p;
}

Test(config, a_bad_line_of_the_file_is_named_with_file_line_and_key)
{
    char *d = tu_tmpdir("config");
    static const struct {
        const char *text, *want;
    } CASES[] = {
        {"[engine]\nqueue_max = 1000\n\n[log]\nlevel = foo\n", ":5: bad value for [log] level: 'foo' (debug, info, warn, error)"},
        {"[mqtt]\nlistn = 1\n", ":2: unknown key 'listn' in section [mqtt]"},
        {"; c\n[nope]\na = 1\n", ":3: unknown section [nope]"},
        {"[engine]\nsync = fast\n", ":2: bad value for [engine] sync: 'fast' (always, interval, none)"},
        {"[engine]\nhead_max = 8\n", ":2: bad value for [engine] head_max: '8' (16 … 65536)"},
        {"[engine]\ngroup_max = 0\n", ":2: bad value for [engine] group_max: '0' (1 … 65536)"},
        {"[engine]\nzstd_level = 20\n", ":2: bad value for [engine] zstd_level: '20' (0 … 19)"},
        {"[http]\nbody_budget = 4294967296\n", ":2: bad value for [http] body_budget"},
        {"[http]\ntls_client_cert = maybe\n", ":2: bad value for [http] tls_client_cert"},
        {"[engine]\nthis is not ini\n", ":2: "},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        char *p = write_file(d, "s.ini", CASES[i].text);
        sr_config c;
        sr_config_defaults(&c);
        char err[768], want[512];
        cr_assert_eq(sr_config_load(&c, p, err, sizeof err), -1, "case %zu loaded", i);
        snprintf(want, sizeof want, "%s%s", p, CASES[i].want);
        cr_assert(!strncmp(err, want, strlen(want)), "case %zu: got '%s', want '%s'", i, err, want);
        free(p);
    }
    sr_config c;
    sr_config_defaults(&c);
    char err[768];
    cr_assert_eq(sr_config_load(&c, "/nonexistent/s.ini", err, sizeof err), -1);
    cr_assert(strstr(err, "/nonexistent/s.ini"), "%s", err);
    tu_rmrf(d);
    free(d);
}

Test(config, checks_between_keys)
{
    static const struct {
        const char *section, *key, *value, *want; /* want NULL: still fine */
    } CASES[] = {
        {"mqtt", "tls_listen", "127.0.0.1:0", "[mqtt] tls_listen needs tls_cert and tls_key"},
        {"http", "tls_client_cert", "require", "[http] tls_client_cert = require needs"},
        {"engine", "queue_max_per_operator", "65537", "[engine] queue_max_per_operator"},
        {"engine", "queue_max_per_operator", "65536", NULL},
        {"server", "work_running_per_operator", "5", "[server] work_*_per_operator"},
        {"server", "work_queue_per_operator", "4097", "[server] work_*_per_operator"},
        {"http", "uploads_per_operator", "1024", "[http] uploads_per_app"},
        {"http", "uploads_per_app", "65", "[http] uploads_per_app"},
        {"users", "password_min_length", "129", "[users] password_min_length"},
        {"users", "password_min_length", "128", NULL},
        /* algorithm names: rows of storage/crypto.c's table, any case */
        {"crypto", "signature", "eddsa", NULL},
        {"crypto", "signature", "PS256", NULL},
        {"crypto", "signature", "ES512", "[crypto] signature: unknown signature algorithm 'ES512' (known: ES256, ES384, PS256, EdDSA)"},
        {"crypto", "signature", "AES-256-GCM", "[crypto] signature: unknown signature algorithm 'AES-256-GCM'"},
        {"crypto", "aead", "aes-256-gcm", NULL},
        {"crypto", "aead", "ChaCha20", "[crypto] aead: unknown AEAD 'ChaCha20' (known: AES-256-GCM)"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        sr_config c;
        sr_config_defaults(&c);
        char err[512] = "";
        cr_assert_eq(sr_config_set(&c, CASES[i].section, CASES[i].key, CASES[i].value, err, sizeof err), 0, "%s",
                     err);
        int rc = sr_config_check(&c, err, sizeof err);
        if (!CASES[i].want) {
            cr_assert_eq(rc, 0, "case %zu: %s", i, err);
            continue;
        }
        cr_assert_eq(rc, -1, "case %zu passed", i);
        cr_assert(strstr(err, CASES[i].want), "case %zu: '%s'", i, err);
    }
}

/* every key of a and b equal, through the table */
static void assert_same(const sr_config *a, const sr_config *b)
{
    for (size_t i = 0; i < sr_config_nkeys; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        char va[1100], vb[1100];
        value_of(a, k, va, sizeof va);
        value_of(b, k, vb, sizeof vb);
        cr_assert_str_eq(va, vb, "[%s] %s", k->section, k->key);
    }
}

Test(config, print_config_reads_back_as_the_same_configuration)
{
    char *d = tu_tmpdir("config");
    for (int variant = 0; variant < 3; variant++) {
        sr_config c;
        sr_config_defaults(&c);
        char err[768];
        /* every key away from its default: 0 the defaults, 1 the minimums
         * (strings emptied, the enums' first word), 2 the maximums (strings
         * as long as a line of the file holds: libinih reads lines of at
         * most 199 bytes; the enums' last word) */
        for (size_t i = 0; variant && i < sr_config_nkeys; i++) {
            const sr_config_key *k = &sr_config_keys[i];
            char v[1100];
            if (k->type == SR_CFG_U32) snprintf(v, sizeof v, "%u", variant == 1 ? k->min : k->max);
            else if (k->type == SR_CFG_STR) {
                size_t n = k->size - 1 < 150 ? k->size - 1 : 150;
                memset(v, 'p', n);
                v[variant == 1 ? 0 : n] = 0;
                if (variant == 2) v[0] = '/';
            } else {
                const char *bar = variant == 1 ? strchr(k->values, '|') : strrchr(k->values, '|');
                if (variant == 1) snprintf(v, sizeof v, "%.*s", (int)(bar - k->values), k->values);
                else snprintf(v, sizeof v, "%s", bar + 1);
            }
            cr_assert_eq(set(&c, k, v, err, sizeof err), 0, "[%s] %s: %s", k->section, k->key, err);
        }
        char *p = malloc(strlen(d) + 16);
        sprintf(p, "%s/p%d.ini", d, variant);
        FILE *f = fopen(p, "w");
        cr_assert(f);
        sr_config_print(&c, f);
        cr_assert_eq(fclose(f), 0);
        sr_config back;
        sr_config_defaults(&back);
        cr_assert_eq(sr_config_load(&back, p, err, sizeof err), 0, "variant %d: %s", variant, err);
        assert_same(&c, &back);
        /* and from a configuration that is not the defaults: the file sets every key */
        if (variant) {
            sr_config other;
            sr_config_defaults(&other);
            cr_assert_eq(sr_config_set(&other, "engine", "queue_max", "777", err, sizeof err), 0);
            cr_assert_eq(sr_config_load(&other, p, err, sizeof err), 0, "%s", err);
            assert_same(&c, &other);
        }
        free(p);
    }
    tu_rmrf(d);
    free(d);
}

Test(config, print_config_names_every_key_once_with_its_range)
{
    sr_config c;
    sr_config_defaults(&c);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f);
    sr_config_print(&c, f);
    fclose(f);
    for (size_t i = 0; i < sr_config_nkeys; i++) {
        const sr_config_key *k = &sr_config_keys[i];
        char line[1200], v[600], range[128], sec[64];
        value_of(&c, k, v, sizeof v);
        snprintf(line, sizeof line, "\n%s =%s%s\n", k->key, v[0] ? " " : "", v);
        cr_assert(strstr(buf, line), "no line '%s'", line + 1);
        sr_config_range(k, range, sizeof range);
        cr_assert(strstr(buf, range), "no range %s", range);
        snprintf(sec, sizeof sec, "[%s]\n", k->section);
        char *s1 = strstr(buf, sec);
        cr_assert(s1 && !strstr(s1 + 1, sec), "[%s] printed %s", k->section, s1 ? "twice" : "never");
    }
    /* libinih reads lines of at most 199 bytes: a longer doc comment would
     * not read back */
    for (char *l = buf, *nl; (nl = strchr(l, '\n')); l = nl + 1)
        cr_assert_lt(nl - l, 199, "a line of %d bytes: %.60s...", (int)(nl - l), l);
    free(buf);
}
