/* tests/support/tabletest.h -- the rows the test build adds to the tables
 * (issue #12 acceptance: a route, a config key and a command through their
 * tables alone). The `suiro-tabletest` binary (tests/CMakeLists.txt) is the
 * product's sources compiled with `-include` of this file: the product's
 * tables end with the hooks SR_TEST_ROUTES (sr_apif_routes,
 * api/apif_http.c), SR_TEST_CONFIG_KEYS (SR_CONFIG_KEYS, api/config.h) and
 * SR_TEST_COMMANDS (COMMANDS, api/cli/main.c), empty in the product; here
 * each is one row. The handlers are in tests/support/tabletest.c.
 * tests/integration/test_tables.sh shows that they work end to end. */
#ifndef SR_TABLETEST_H
#define SR_TABLETEST_H

#include "api/cli/opts.h"
#include "api/routes.h"

void sr_tabletest_route(const sr_route_call *c);
int sr_tabletest_cmd(const sr_command *cmd, int argc, char **argv);
extern const sr_opt sr_tabletest_opts[];

#define SR_TEST_ROUTES {"GET", "/api/v1/tabletest/{word}", sr_tabletest_route, SR_CALLER_APP, SR_BODY_HTTP_MAX, 0, SR_FWD_NONE},
#define SR_TEST_CONFIG_KEYS(U, S, E) U(tabletest, answer, tabletest_answer, 42, 1, 1000, "the table test's key")
#define SR_TEST_COMMANDS                                                                                               \
    {"tabletest", sr_tabletest_cmd, "WORD", 1, 1, "the table test's command: prints WORD", sr_tabletest_opts, NULL},

#endif
