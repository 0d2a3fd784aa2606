/* tests/api/test_alarm_rules.c -- docs/monitoring.md's rules table and the
 * rules' table (api/alarms.c SR_ALARM_RULES, sr_alarm_rule) agree: every
 * rule is a row with its level(s), whether it resolves itself and whose it
 * is, and every row is a rule. Rows: | `rule` | levels | yes/no | whose |
 * ... |. */
#include "api/alarms.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOC SR_TEST_DATA "/../../docs/monitoring.md"

Test(alarm_rules, every_rule_is_a_row_of_the_docs_table_and_nothing_else)
{
    FILE *f = fopen(DOC, "r");
    cr_assert(f, "cannot open %s", DOC);
    char line[4096];
    int seen[64] = {0}, errors = 0, in_rules = 0;
    size_t n = 0;
    while (sr_alarm_rule(n)) n++;
    cr_assert(n > 0 && n < 64);
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "### ", 4)) in_rules = !strncmp(line, "### Rules", 9);
        if (!in_rules || strncmp(line, "| `", 3)) continue;
        char name[80], levels[120], self[16], whose[200];
        cr_assert(!tu_md_cell(line, 0, name, sizeof name) && !tu_md_cell(line, 1, levels, sizeof levels) &&
                      !tu_md_cell(line, 2, self, sizeof self) && !tu_md_cell(line, 3, whose, sizeof whose),
                  "not a row of the rules' table: %s", line);
        size_t i = 0;
        while (i < n && strcmp(sr_alarm_rule(i)->name, name)) i++;
        if (i == n) {
            cr_log_error("docs/monitoring.md has rule %s, which is not in SR_ALARM_RULES", name);
            errors++;
            continue;
        }
        const sr_alarm_rule_info *r = sr_alarm_rule(i);
        seen[i]++;
        if (!strstr(levels, sr_alarm_level_name(r->level))) {
            cr_log_error("%s: the docs' levels '%s' lack its highest, %s", name, levels, sr_alarm_level_name(r->level));
            errors++;
        }
        if (strcmp(self, r->auto_resolve ? "yes" : "no")) {
            cr_log_error("%s: the docs say it resolves itself '%s', the table %d", name, self, r->auto_resolve);
            errors++;
        }
        if (!!strstr(whose, "platform") != !!r->platform) {
            cr_log_error("%s: the docs say whose '%s', the table platform=%d", name, whose, r->platform);
            errors++;
        }
    }
    fclose(f);
    for (size_t i = 0; i < n; i++)
        if (seen[i] != 1) {
            cr_log_error("rule %s is documented %d times in docs/monitoring.md's rules table", sr_alarm_rule(i)->name,
                         seen[i]);
            errors++;
        }
    cr_assert_eq(errors, 0, "%d disagreements (above)", errors);
}
