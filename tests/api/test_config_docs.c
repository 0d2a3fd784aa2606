/* tests/api/test_config_docs.c -- docs/configuration.md and the table of
 * keys (api/config.h) agree: every key of the table is a row of the docs'
 * table with the same default and range, and every row of the docs' table
 * is a key. The docs' rows are `| `[section]` | `key` | default | range |
 * meaning |`; backticks do not count, and "(none)" is the empty default. */
#include "api/config.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOC SR_TEST_DATA "/../../docs/configuration.md"

Test(config_docs, every_key_documented_with_its_default_and_range_and_nothing_else)
{
    FILE *f = fopen(DOC, "r");
    cr_assert(f, "cannot open %s", DOC);
    char line[4096];
    int *seen = calloc(sr_config_nkeys, sizeof *seen);
    int rows = 0, errors = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "| `[", 4)) continue; /* rows of the keys' table start with a section */
        rows++;
        char sec[64], key[128], def[1100], range[256];
        cr_assert(!tu_md_cell(line, 0, sec, sizeof sec) && !tu_md_cell(line, 1, key, sizeof key) &&
                      !tu_md_cell(line, 2, def, sizeof def) && !tu_md_cell(line, 3, range, sizeof range),
                  "not a row of five cells: %s", line);
        size_t sl = strlen(sec);
        cr_assert(sl > 2 && sec[0] == '[' && sec[sl - 1] == ']', "section cell '%s'", sec);
        sec[sl - 1] = 0;
        const sr_config_key *k = sr_config_find(sec + 1, key);
        if (!k) {
            cr_log_error("docs/configuration.md documents [%s] %s, which is not in the table", sec + 1, key);
            errors++;
            continue;
        }
        size_t i = (size_t)(k - sr_config_keys);
        if (seen[i]++) {
            cr_log_error("[%s] %s is documented twice", k->section, k->key);
            errors++;
        }
        if (!strcmp(def, "(none)")) def[0] = 0;
        if (strcmp(def, k->def)) {
            cr_log_error("[%s] %s: the docs say default '%s', the table '%s'", k->section, k->key, def, k->def);
            errors++;
        }
        char want[256];
        sr_config_range(k, want, sizeof want);
        if (strcmp(range, want)) {
            cr_log_error("[%s] %s: the docs say range '%s', the table '%s'", k->section, k->key, range, want);
            errors++;
        }
    }
    fclose(f);
    for (size_t i = 0; i < sr_config_nkeys; i++)
        if (!seen[i]) {
            cr_log_error("[%s] %s is not documented in docs/configuration.md", sr_config_keys[i].section,
                         sr_config_keys[i].key);
            errors++;
        }
    free(seen);
    cr_assert_gt(rows, 0, "no rows found in %s", DOC);
    cr_assert_eq(errors, 0, "%d disagreements between docs/configuration.md and api/config.h (above)", errors);
}
