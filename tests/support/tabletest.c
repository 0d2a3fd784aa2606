/* tests/support/tabletest.c -- the handlers of the test build's extra rows
 * (tests/support/tabletest.h): a route that answers its parameter and the
 * caller's operator, and a command that prints its argument. */
#include "tabletest.h"

#include "api/apif_int.h"
#include "api/cli/cli.h"
#include "api/httpu.h"

#include <stdio.h>
#include <string.h>

void sr_tabletest_route(const sr_route_call *c)
{
    const sr_ap_token *t = c->caller;
    json_t *o = json_pack("{s:s,s:s}", "word", sr_route_param(c, "word"), "operatorId", t->op);
    sr_http_jsonv(c->req, 200, o);
    json_decref(o);
}

typedef struct topts {
    int upper;
} topts;

const sr_opt sr_tabletest_opts[] = {
    SR_OPT_FLAG("upper", 'u', topts, upper, "print WORD in capitals"),
    SR_OPT_END,
};

int sr_tabletest_cmd(const sr_command *cmd, int argc, char **argv)
{
    topts o = {0};
    sr_args a;
    int rc = sr_opts_parse(cmd, argc, argv, &o, &a);
    if (rc) return rc == SR_OPTS_HELP ? 0 : rc;
    char w[256];
    snprintf(w, sizeof w, "%s", a.pos[0]);
    for (char *p = w; o.upper && *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
    printf("tabletest %s\n", w);
    return 0;
}
