/* tests/support/brokertest.h -- the broker (api/broker.h) on its own libuv
 * loop against a real engine in a temporary directory (log not synced),
 * set up from a set-up sheet, with MQTT-like links for its gateways that
 * record (or hand to a hook) every request pushed to them. Used by
 * tests/api/test_broker_answers.c and tests/fuzz/fuzz_gwanswer.c. */
#ifndef SR_BROKERTEST_H
#define SR_BROKERTEST_H

#include "api/broker.h"

#include <jansson.h>
#include <uv.h>

typedef struct bt bt;
typedef struct bt_link {
    bt *t;
    char gw[72];
} bt_link;

struct bt {
    char *dir;
    uv_loop_t loop;
    sr_engine *eng;
    sr_broker *b;
    char op[72];
    bt_link links[8];
    size_t nlinks;
    /* every request object pushed to a gateway, in order: {"gw", "request"};
     * not kept when on_request is set */
    json_t *handed;
    void (*on_request)(void *arg, const char *gw, json_t *request);
    void *arg;
};

/* Open: engine, sheet (all-or-nothing), broker, and each gateway of gws
 * online. op is the sheet's operator. 0 or an SR_ code. */
int bt_open(bt *t, const char *sheet, const char *op, const char *const *gws, size_t ngws);
/* Import another sheet into the open engine (as `suiro sheet import`). */
int bt_import(bt *t, const char *sheet);
/* Run the loop until *flag is non-zero (at most a bounded number of turns):
 * 0, or -1 if it never became so. */
int bt_run_until(bt *t, const int *flag);
/* What the broker answered a gateway's message. */
typedef struct bt_gw_ans {
    int done; /* times answered */
    char code[8];
    char msg[200];
} bt_gw_ans;
/* Send body (JSON text) as gateway gw of op on topic suffix with
 * header.messageType type (a fresh messageId each call), and run the loop
 * until it is answered: 0; -1 the envelope did not parse (g->msg says why);
 * -2 no answer in time; -3 answered more than once. */
int bt_gw_send(bt *t, const char *op, const char *gw, const char *suffix, const char *type, const char *body,
               bt_gw_ans *g);
/* The n-th (0-based) request pushed to gw of the given type, or NULL
 * (borrowed from t->handed). */
json_t *bt_request(bt *t, const char *gw, const char *type, size_t n);
/* Close the broker as the server does, then the engine; remove the directory. */
void bt_close(bt *t);

#endif
