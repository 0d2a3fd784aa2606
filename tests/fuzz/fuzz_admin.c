/* tests/fuzz/fuzz_admin.c -- the Admin API's request bodies (/admin/v1,
 * api/admin_*.c, csv_http.c): arbitrary bytes as the body of every admin
 * route that takes one (POST, PUT, PATCH), through the route's own handler
 * -- the same JSON parsing (sr_admin_body), field validation, engine event
 * builders and refusals the server runs -- without the network:
 *
 *  - a real engine in a temporary directory with one operator (the set-up
 *    sheet below, tests/support/brokertest.h) and the Admin binding
 *    (sr_admin_open) on the same libuv loop;
 *  - the request is an h2o request on an in-memory connection (a loopback
 *    final stream that keeps the answer), the handler is called as the
 *    dispatcher calls it (api/admin_http.c: the row found by sr_route_find,
 *    its path parameters filled) for a platform user holding every role
 *    (the dispatcher's authentication and action checks are not what is
 *    fuzzed here; the body limit of the row is applied as it does);
 *  - the loop runs until the handler's answer is complete (engine commits
 *    and worker-queue jobs included), then the answer must be one response
 *    with a status 2xx-5xx, and an error answer the contract's {"result":{"code":..}}.
 *
 * Input: an optional first line "METHOD /admin/v1/path-pattern" naming the
 * route (as written in its row; the corpus, tests/fuzz/admin/, has one per
 * route), then the body. A first line that names no row picks a route by
 * the input's first byte and the whole input is the body. Routes not run:
 * the login (SR_CALLER_NONE: the dispatcher's path, not a handler's body)
 * and the POST rows that take no body (bodyless() below).
 *
 * AUTHORIZATION MODE (an input starting with '@'): the fuzzer also chooses
 * the caller -- byte 1 its scope (platform, operator, vendor) and byte 2
 * its roles among that scope's (a bit each; none is allowed too), byte 3
 * its operator or vendor (own "fz" / foreign "other", "V1" / "V2") and
 * whether the path names the sheet's entries or others -- and the route,
 * among every Admin row whose action the dispatcher checks (any method),
 * by the first line or byte 4 as above. The dispatcher's check
 * (sr__admin_route_authorized) runs as the server runs it, and its verdict
 * must be what docs/admin.md's role table says (read from the doc at the
 * start, not from the code, with the scope rules test_admin_matrix.py
 * uses: platform, own operator, own vendor, granted, none) for the path's
 * target (its {operatorId} and an {appId}'s or {gatewayId}'s vendor, a
 * {vendorId}, or a {userId}'s scope; else the platform; the entries' data
 * read from the registry): a refusal is exactly 403 E2003.
 * An input the check lets through to a row with a body then runs its
 * handler with that caller, as in the first mode. */
#include "api/admin_http.h"
#include "api/admin_int.h"
#include "api/config.h"
#include "api/loginguard.h"
#include "api/routes.h"
#include "api/slog.h"
#include "brokertest.h"

#include <h2o.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char SHEET[] = "#suiro-setup-sheet v1\n"
                            "[operator]\nid,name\nfz,Fuzz\n\n"
                            "[gateways]\nid,name,secret\nG1,g1,fuzz-g1-secret-0001\n\n"
                            "[apps]\nid,name,secret,push_url\nA1,a1,fuzz-a1-secret-0001,\n\n"
                            "[facilities]\nid,name\nF,f\n\n"
                            "[equipment]\nid,facility,name\nE,F,e\n\n"
                            "[devices]\nid,equipment,gateway,name\nD1,E,G1,d1\n\n"
                            "[datapoints]\nid,device,name,type,unit,min,max,kind\n"
                            "N,D1,n,number,m,0,100,both\nB,D1,b,boolean,,,,control\n\n"
                            "[grants]\napp,datapoint,access\nA1,N,both\n";

#define CHECK(c)                                                                                                       \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            fprintf(stderr, "fuzz_admin: check failed: %s (line %d)\n", #c, __LINE__);                                 \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* ---- the set-up (once) ----------------------------------------------------- */

static bt t;
static sr_admin *adm;
static sr_loginguard *guard;
static sr_admin_conf conf;
static h2o_globalconf_t h2conf;
static h2o_hostconf_t *hosts[2];
static h2o_pathconf_t *pconf;
static h2o_context_t h2ctx;
static sr_admin_caller caller;

typedef struct row {
    const sr_route *r;
} row;
static row rows[256];
static size_t nrows;
static row arows[512]; /* authorization mode: every row with a dispatcher-checked action */
static size_t narows;

/* ---- docs/admin.md's role table (authorization mode) ------------------------- */

enum { R_NONE, R_PLATFORM, R_OWN_OP, R_OWN_VENDOR, R_GRANTED };
static int doc_rule[SR_ROLE_COUNT][SR_ACT_COUNT]; /* R_*; -1: not in the doc */

static int rule_of(const char *cell, size_t n)
{
#define IS(s) (n == sizeof(s) - 1 && !memcmp(cell, s, n))
    if (IS("platform")) return R_PLATFORM;
    if (IS("own operator")) return R_OWN_OP;
    if (IS("own vendor")) return R_OWN_VENDOR;
    if (IS("granted")) return R_GRANTED;
    if (IS("none")) return R_NONE;
#undef IS
    return -1;
}

/* the "## Role table" section: the header's `a.b` actions, a row per `role` */
static void read_role_table(void)
{
    memset(doc_rule, 0xff, sizeof doc_rule);
    FILE *f = fopen(SR_DOCS_ADMIN, "r");
    CHECK(f);
    char line[2048];
    int in = 0, nact = 0, acts[32];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "## ", 3)) {
            if (in) break;
            in = !strncmp(line, "## Role table", 13);
            continue;
        }
        if (!in || line[0] != '|') continue;
        if (!strncmp(line, "| Role", 6)) {
            for (char *p = strchr(line, '`'); p && nact < 32; p = strchr(p, '`')) {
                char *e = strchr(p + 1, '`');
                CHECK(e);
                int a = -1;
                for (int k = 0; k < SR_ACT_COUNT; k++) {
                    const char *nm = sr_authz_action_name((sr_authz_action)k);
                    if (strlen(nm) == (size_t)(e - p - 1) && !memcmp(nm, p + 1, (size_t)(e - p - 1))) a = k;
                }
                CHECK(a >= 0); /* every column an action of the code */
                acts[nact++] = a;
                p = e + 1;
            }
            continue;
        }
        if (strncmp(line, "| `", 3)) continue;
        char *e = strchr(line + 3, '`');
        CHECK(e);
        int role = -1;
        for (int k = 0; k < SR_ROLE_COUNT; k++) {
            const char *nm = sr_role_name((sr_role)k);
            if (strlen(nm) == (size_t)(e - line - 3) && !memcmp(nm, line + 3, (size_t)(e - line - 3))) role = k;
        }
        CHECK(role >= 0);
        char *cell = strchr(e, '|');
        for (int i = 0; i < nact && cell; i++) {
            char *end = strchr(cell + 1, '|');
            CHECK(end);
            char *b = cell + 1;
            while (*b == ' ') b++;
            char *z = end;
            while (z > b && z[-1] == ' ') z--;
            int r = rule_of(b, (size_t)(z - b));
            CHECK(r >= 0);
            doc_rule[role][acts[i]] = r;
            cell = end;
        }
    }
    fclose(f);
    CHECK(nact == SR_ACT_COUNT);
    for (int r = 0; r < SR_ROLE_COUNT; r++)
        for (int a = 0; a < SR_ACT_COUNT; a++) CHECK(doc_rule[r][a] >= 0); /* every cell */
}

/* the roles of each scope (docs/admin.md "Roles"; as srtest.ROLE_SCOPE) */
static const char *const SCOPE_ROLES[3][4] = {
    {"platform_admin", "auditor"},
    {"operator_admin", "operator_general"},
    {"ap_vendor_admin", "ap_vendor_general", "gw_vendor_admin", "gw_vendor_general"}};

static void cleanup(void)
{
    sr_admin_quiesce(adm);
    for (int i = 0; i < 100000 && sr_admin_busy(adm); i++) uv_run(&t.loop, UV_RUN_ONCE);
    sr_loginguard_stop(guard);
    sr_admin_free(adm);
    bt_close(&t);
    sr_loginguard_free(guard);
}

/* POST rows that take no body (docs/api/openapi.yaml: no requestBody):
 * their handlers read none, and some of them deliberately cost seconds
 * under ASan (a new secret's or password's scrypt) -- nothing to fuzz */
static int bodyless(const sr_route *r)
{
    static const char *const tails[] = {"/secret", "/password-reset", "/disable", "/enable", "/approve",
                                        "/deactivate", "/retention/run", "/keys/master", "/me/totp"};
    if (strcmp(r->method, "POST")) return 0;
    size_t n = strlen(r->path);
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t k = strlen(tails[i]);
        if (n >= k && !strcmp(r->path + n - k, tails[i])) return 1;
    }
    return 0;
}

static void setup(void)
{
    sr_slog_set_level(SR_LOG_ERROR); /* quiet: refusals are expected */
    static const char *const gws[] = {"G1"};
    CHECK(bt_open(&t, SHEET, "fz", gws, 1) == SR_OK);
    /* the caller as a user of the engine (a privilege change names its
     * requester), and an operator user the share lists may name */
    sr_config cfg;
    sr_config_defaults(&cfg);
    sr_password_policy pol;
    sr_config_password_policy(&cfg, &pol);
    static const char *const padmin[] = {"platform_admin"}, *const ogen[] = {"operator_general"};
    sr_user us[2] = {{.id = "fuzzadmin", .name = "fuzzadmin", .scope = SR_US_PLATFORM, .scope_id = "", .roles = padmin,
                      .n_roles = 1},
                     {.id = "u1", .name = "u1", .scope = SR_US_OPERATOR, .scope_id = "fz", .roles = ogen,
                      .n_roles = 1}};
    sr_cmd_env env = {"", "system", SR_ACTOR_SYSTEM, NULL, "fuzz"};
    for (int i = 0; i < 2; i++) {
        sr_buf evb;
        sr_buf_init(&evb);
        char why[160];
        sr_result res = {0};
        CHECK(sr_cmd_user_create(&env, &us[i], "fuzz-password-0001", 0, (int64_t)time(NULL) * 1000, &pol, &evb, why,
                                 sizeof why) == SR_OK);
        sr_slice sl = {evb.data, evb.len};
        CHECK(sr_engine_submit_wait(t.eng, &sl, 1, &res) == SR_OK && res.rc == SR_OK);
        sr_buf_release(&evb);
    }
    sr_login_policy lp;
    sr_login_policy_default(&lp);
    lp.workers = 1;
    CHECK(sr_loginguard_open(&t.loop, &lp, &guard) == SR_OK);
    CHECK(sr_admin_open(&t.loop, t.eng, guard, &adm) == SR_OK);
    sr_admin_conf_default(&conf);
    conf.data_dir = t.dir;
    sr_admin_set_conf(adm, NULL, &conf);
    h2o_config_init(&h2conf);
    hosts[0] = h2o_config_register_host(&h2conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    pconf = h2o_config_register_path(hosts[0], "/", 0);
    h2o_context_init(&h2ctx, &t.loop, &h2conf);
    /* a platform user holding every role */
    snprintf(caller.user, sizeof caller.user, "fuzzadmin");
    caller.scope = SR_SCOPE_PLATFORM;
    for (int i = 0; i < SR_ROLE_COUNT; i++) caller.roles[caller.nroles++] = (sr_role)i;
    snprintf(caller.source, sizeof caller.source, "127.0.0.1");
    for (size_t l = 0; l < sr_nroute_lists; l++) {
        if (strcmp(sr_route_lists[l].binding, "Admin")) continue;
        for (size_t i = 0; i < *sr_route_lists[l].n; i++) {
            const sr_route *r = &sr_route_lists[l].rows[i];
            if (strcmp(r->method, "POST") && strcmp(r->method, "PUT") && strcmp(r->method, "PATCH")) continue;
            if (r->caller == SR_CALLER_NONE || bodyless(r)) continue;
            CHECK(nrows < sizeof rows / sizeof rows[0]);
            rows[nrows++].r = r;
        }
    }
    CHECK(nrows > 20);
    for (size_t l = 0; l < sr_nroute_lists; l++) {
        if (strcmp(sr_route_lists[l].binding, "Admin")) continue;
        for (size_t i = 0; i < *sr_route_lists[l].n; i++) {
            const sr_route *r = &sr_route_lists[l].rows[i];
            if (r->caller == SR_CALLER_NONE || r->action <= 0 || r->action > SR_ACT_COUNT) continue;
            CHECK(narows < sizeof arows / sizeof arows[0]);
            arows[narows++].r = r;
        }
    }
    CHECK(narows > 20);
    read_role_table();
    atexit(cleanup);
}

/* ---- an in-memory connection (h2o's own unit tests' loopback) --------------- */

typedef struct lconn {
    h2o_conn_t super;
    h2o_ostream_t final;
    h2o_buffer_t *body;
    int complete;
    int sends;
    h2o_req_t req;
} lconn;

static socklen_t lc_name(h2o_conn_t *c, struct sockaddr *sa)
{
    (void)c;
    struct sockaddr_in *in = (struct sockaddr_in *)sa;
    memset(in, 0, sizeof *in);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = htons(40000);
    return sizeof *in;
}

static const h2o_conn_callbacks_t lc_callbacks = {.get_sockname = lc_name, .get_peername = lc_name};

static void lc_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t n, h2o_send_state_t state)
{
    lconn *c = H2O_STRUCT_FROM_MEMBER(lconn, final, self);
    CHECK(!c->complete); /* nothing after the final part */
    for (size_t i = 0; i < n; i++) {
        h2o_buffer_reserve(&c->body, bufs[i].len);
        memcpy(c->body->bytes + c->body->size, bufs[i].base, bufs[i].len);
        c->body->size += bufs[i].len;
    }
    c->sends++;
    if (h2o_send_state_is_in_progress(state)) h2o_proceed_response(req);
    else c->complete = 1;
}

static lconn *lc_new(void)
{
    lconn *c = (lconn *)h2o_create_connection(sizeof *c, &h2ctx, hosts, (struct timeval){0}, &lc_callbacks);
    memset((char *)c + sizeof c->super, 0, offsetof(lconn, req) - sizeof c->super);
    h2o_init_request(&c->req, &c->super, NULL);
    h2o_buffer_init(&c->body, &h2o_socket_buffer_prototype);
    c->req._ostr_top = &c->final;
    c->final.do_send = lc_send;
    return c;
}

static void lc_free(lconn *c)
{
    h2o_buffer_dispose(&c->body);
    h2o_dispose_request(&c->req);
    free(c);
}

/* ---- one input --------------------------------------------------------------- */

/* a path parameter's value: an entry of the sheet where there is one */
static const char *param_value(const char *name, size_t n, int alt)
{
#define IS(s) (n == sizeof(s) - 1 && !memcmp(name, s, n))
    if (IS("operatorId")) return alt ? "nosuchop" : "fz";
    if (IS("appId")) return alt ? "A9" : "A1";
    if (IS("gatewayId")) return "G1";
    if (IS("dataId")) return alt ? "B" : "N";
    if (IS("userId")) return alt ? "fuzzadmin" : "u1";
    if (IS("vendorId")) return "V1";
    if (IS("class")) return alt ? "audit" : "values";
    if (IS("path")) return alt ? "a/b.txt" : "f.txt";
    if (IS("pendingId")) return "p1";
    if (IS("alarmId")) return "1";
    if (IS("kind")) return alt ? "nosuchkind" : "facilities";
    if (IS("id")) return "F3";
    if (IS("rule")) return "r1";
    if (IS("pattern")) return "G*";
    if (IS("collection")) return "docs";
    return alt ? "x*" : "x1";
#undef IS
}

/* the concrete path of pattern p into out */
static void make_path(const char *p, int alt, char *out, size_t cap)
{
    size_t o = 0;
    while (*p && o + 1 < cap) {
        if (*p == '{') {
            const char *e = strchr(p, '}');
            CHECK(e);
            const char *v = param_value(p + 1, (size_t)(e - p - 1), alt);
            int w = snprintf(out + o, cap - o, "%s", v);
            CHECK(w > 0 && (size_t)w < cap - o);
            o += (size_t)w;
            p = e + 1;
        } else out[o++] = *p++;
    }
    out[o] = 0;
}

/* authorization mode: the caller the input chooses (bytes s, b, o) into cl */
static void choose_caller(uint8_t s, uint8_t b, uint8_t o, sr_admin_caller *cl)
{
    memset(cl, 0, sizeof *cl);
    snprintf(cl->user, sizeof cl->user, "fuzzadmin");
    snprintf(cl->source, sizeof cl->source, "127.0.0.1");
    int sc = s % 3;
    cl->scope = sc == 0 ? SR_SCOPE_PLATFORM : sc == 1 ? SR_SCOPE_OPERATOR : SR_SCOPE_VENDOR;
    if (sc == 1) snprintf(cl->scope_id, sizeof cl->scope_id, "%s", o & 1 ? "other" : "fz");
    if (sc == 2) snprintf(cl->scope_id, sizeof cl->scope_id, "%s", o & 1 ? "V2" : "V1");
    if (sc == 1) snprintf(cl->op, sizeof cl->op, "%s", cl->scope_id);
    for (int i = 0; i < 4; i++) {
        if (!SCOPE_ROLES[sc][i] || !(b >> i & 1)) continue;
        for (int k = 0; k < SR_ROLE_COUNT; k++)
            if (!strcmp(sr_role_name((sr_role)k), SCOPE_ROLES[sc][i])) cl->roles[cl->nroles++] = (sr_role)k;
    }
}

/* the doc's verdict for cl on row r's path (made with alt) */
static int doc_allows(const sr_admin_caller *cl, const sr_route *r, int alt)
{
    /* the target, from the path as docs/admin.md describes it: the
     * operator, and under it an app's or gateway's vendor; a vendor; a
     * user's operator or vendor; else the platform. The entries' data (an
     * app's vendor, a grant, a user's scope) is the registry's: earlier
     * inputs may have changed it */
    const char *op = NULL, *vendor = NULL;
    char vbuf[72] = "", ubuf[72] = "";
    int granted = 0;
    sr_rec rec = SR_REC_INIT;
    if (strstr(r->path, "{operatorId}")) {
        op = param_value("operatorId", 10, alt);
        int app = strstr(r->path, "{appId}") != NULL, gw = strstr(r->path, "{gatewayId}") != NULL;
        sr_reg_entry re;
        if ((app || gw) && sr_read_registry(t.eng, op, app ? SR_RG_APP : SR_RG_GATEWAY,
                                            param_value(app ? "appId" : "gatewayId", app ? 5 : 9, alt), &rec,
                                            &re) == SR_OK && re.vendor_id[0]) {
            snprintf(vbuf, sizeof vbuf, "%s", re.vendor_id);
            vendor = vbuf;
        }
        sr_rec_close(&rec);
        if (cl->scope == SR_SCOPE_VENDOR) {
            granted = sr_read_registry(t.eng, op, SR_RG_VENDOR_GRANT, cl->scope_id, &rec, &re) == SR_OK;
            sr_rec_close(&rec);
        }
    } else if (strstr(r->path, "{vendorId}"))
        vendor = param_value("vendorId", 8, alt);
    else if (strstr(r->path, "{userId}")) {
        sr_user u;
        if (sr_read_user(t.eng, param_value("userId", 6, alt), &rec, &u) == SR_OK) {
            snprintf(ubuf, sizeof ubuf, "%s", u.scope_id);
            if (u.scope == SR_US_OPERATOR) op = ubuf;
            else if (u.scope == SR_US_VENDOR) vendor = ubuf;
        }
        sr_rec_close(&rec);
    }
    int act = r->action - 1;
    for (size_t i = 0; i < cl->nroles; i++) {
        int rule = doc_rule[cl->roles[i]][act];
        if (rule == R_PLATFORM) return 1;
        if (rule == R_OWN_OP && cl->scope == SR_SCOPE_OPERATOR && op && !strcmp(op, cl->scope_id)) return 1;
        if (rule == R_OWN_VENDOR && cl->scope == SR_SCOPE_VENDOR && vendor && !strcmp(vendor, cl->scope_id)) return 1;
        if (rule == R_GRANTED && cl->scope == SR_SCOPE_VENDOR && op && granted) return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) setup(), ready = 1;
    /* authorization mode: '@', the caller's three bytes, then as below */
    int authz = size >= 4 && data[0] == '@';
    sr_admin_caller who = caller;
    uint8_t who_o = 0;
    if (authz) {
        choose_caller(data[1], data[2], data[3], &who);
        who_o = data[3];
        data += 4;
        size -= 4;
    }
    const row *pick = authz ? arows : rows;
    size_t npick = authz ? narows : nrows;
    /* the route: the first line names it, else the first byte picks it */
    const sr_route *r = NULL;
    const uint8_t *nl = memchr(data, '\n', size < 200 ? size : 200);
    size_t skip = 0;
    if (nl) {
        for (size_t i = 0; i < npick && !r; i++) {
            size_t ml = strlen(pick[i].r->method), pl = strlen(pick[i].r->path);
            if ((size_t)(nl - data) == ml + 1 + pl && !memcmp(data, pick[i].r->method, ml) && data[ml] == ' ' &&
                !memcmp(data + ml + 1, pick[i].r->path, pl))
                r = pick[i].r;
        }
        if (r) skip = (size_t)(nl - data) + 1;
    }
    int alt = 0;
    if (!r) {
        if (!size) return 0;
        r = pick[data[0] % npick].r;
        alt = (data[0] / npick) & 1;
    }
    if (authz) alt = who_o >> 1 & 1;
    int runs = 1; /* the handler runs: a row with a body (authorization mode: once allowed) */
    if (authz) {
        runs = 0;
        for (size_t i = 0; i < nrows && !runs; i++) runs = rows[i].r == r;
    }
    const uint8_t *body = data + skip;
    size_t blen = size - skip;
    char msg[200];
    if (runs && sr_route_body_check(r, blen, msg, sizeof msg)) return 0; /* the dispatcher's 413 */
    if (!runs) blen = 0;

    char path[1024];
    make_path(r->path, alt, path, sizeof path);
    lconn *c = lc_new();
    h2o_req_t *req = &c->req;
    req->method = h2o_iovec_init(r->method, strlen(r->method));
    req->path = req->path_normalized = req->input.path = h2o_iovec_init(path, strlen(path));
    req->input.method = req->method;
    req->authority = req->input.authority = h2o_iovec_init(H2O_STRLIT("localhost"));
    req->version = 0x101;
    req->pathconf = pconf;
    req->hostconf = hosts[0];
    /* the body in its own allocation, so that ASan sees any overread */
    char *b = malloc(blen ? blen : 1);
    CHECK(b);
    memcpy(b, body, blen);
    req->entity = h2o_iovec_init(b, blen);

    sr_route_call call;
    memset(&call, 0, sizeof call);
    int known = 0;
    CHECK(sr_route_find(r, 1, r->method, strlen(r->method), path, strlen(path), &call, &known) == r);
    call.binding = adm;
    call.req = req;
    call.caller = authz ? &who : &caller;
    int go = 1;
    if (authz) { /* the dispatcher's check, and the doc's verdict */
        int want = doc_allows(&who, r, alt);
        go = sr__admin_route_authorized(adm, &call, r);
        if (go != want)
            fprintf(stderr, "fuzz_admin: %s %s, scope %d (%s) roles %zu: the dispatcher %s, docs/admin.md %s\n",
                    r->method, path, who.scope, who.scope_id, who.nroles, go ? "allows" : "refuses",
                    want ? "allows" : "refuses");
        CHECK(go == want);
        if (!go) { /* exactly 403 E2003, answered at once */
            for (int i = 0; i < 200000 && !c->complete; i++) uv_run(&t.loop, UV_RUN_ONCE);
            CHECK(c->complete && req->res.status == 403);
            CHECK(c->body->size && memmem(c->body->bytes, c->body->size, "E2003", 5));
        }
    }
    if (go && runs) r->handler(&call);
    else if (go) { /* allowed, not run: done */
        lc_free(c);
        free(b);
        return 0;
    }
    for (int i = 0; i < 2000000 && !c->complete; i++) uv_run(&t.loop, UV_RUN_ONCE);
    CHECK(c->complete); /* every request is answered */
    if (getenv("FUZZ_ADMIN_SHOW"))
        fprintf(stderr, "%s %s -> %d %.*s\n", r->method, path, req->res.status, (int)c->body->size, c->body->bytes);
    CHECK(req->res.status >= 200 && req->res.status < 600);
    if (req->res.status >= 400) { /* an error answer: the contract's {"code":..,"message":..} */
        json_error_t je;
        json_t *j = json_loadb(c->body->bytes, c->body->size, 0, &je);
        json_t *res = json_object_get(j, "result");
        CHECK(j && json_is_string(json_object_get(res ? res : j, "code")));
        json_decref(j);
    }
    lc_free(c);
    free(b);
    /* jobs still holding the request (it is gone: they answer no one) end here */
    for (int i = 0; i < 100000 && sr_admin_busy(adm); i++) uv_run(&t.loop, UV_RUN_ONCE);
    return 0;
}
