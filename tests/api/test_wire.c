/* tests/api/test_wire.c -- the wire error table (api/wire.h): codes unique
 * and parseable, every row's HTTP status as interface.md gives it and its
 * default message, the engine code -> wire error mapping (total, and the
 * same outcomes the bindings acknowledge with), and the table against the
 * error codes docs/api/openapi.yaml lists (ErrorCode). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "api/gwif_json.h"
#include "api/wire.h"

#define OPENAPI SR_TEST_DATA "/../../docs/api/openapi.yaml"

/* interface.md, "Errors" (../shared/docs/interface.md): copied here so that
 * a change of the table that departs from the contract fails */
static const struct {
    sr_wire w;
    const char *code;
    int status;
} contract[] = {
    {SR_WIRE_OK, "0", 200},           {SR_WIRE_PARAM, "E1001", 400},     {SR_WIRE_JSON, "E1002", 400},
    {SR_WIRE_LARGE, "E1003", 413},    {SR_WIRE_UNAUTH, "E2001", 401},    {SR_WIRE_EXPIRED, "E2002", 401},
    {SR_WIRE_FORBIDDEN, "E2003", 403}, {SR_WIRE_UNKNOWN, "E3001", 404},  {SR_WIRE_CONFLICT, "E3002", 409},
    {SR_WIRE_GW_DOWN, "E4001", 503},  {SR_WIRE_GW_TIMEOUT, "E4002", 504}, {SR_WIRE_DEVICE, "E4003", 502},
    {SR_WIRE_REJECTED, "E4004", 422}, {SR_WIRE_SIGNATURE, "E5001", 422}, {SR_WIRE_DECRYPT, "E5002", 422},
    {SR_WIRE_CERT, "E5003", 422},     {SR_WIRE_INTERNAL, "E9001", 500},  {SR_WIRE_BUSY, "E9002", 429},
};
#define NCONTRACT (sizeof contract / sizeof contract[0])

Test(wire, every_row_has_the_contracts_code_and_status)
{
    cr_assert_eq(NCONTRACT, SR_WIRE__COUNT, "the table has %d rows, interface.md %zu codes", (int)SR_WIRE__COUNT,
                 NCONTRACT);
    for (size_t i = 0; i < NCONTRACT; i++) {
        cr_expect_str_eq(sr_wire_code(contract[i].w), contract[i].code, "row %zu", i);
        cr_expect_eq(sr_wire_status(contract[i].w), contract[i].status, "%s", contract[i].code);
        /* the class of a code: E9xxx is about the server (a gateway resends) */
        cr_expect_eq(sr_wire_transient(contract[i].w), contract[i].code[1] == '9', "%s", contract[i].code);
    }
}

Test(wire, codes_are_unique_and_parse_back)
{
    for (int i = 0; i < SR_WIRE__COUNT; i++) {
        const char *c = sr_wire_code((sr_wire)i);
        for (int k = 0; k < i; k++) cr_assert_str_neq(c, sr_wire_code((sr_wire)k), "rows %d and %d", k, i);
        sr_wire w = SR_WIRE__COUNT;
        cr_assert_eq(sr_wire_parse(c, &w), 0, "%s", c);
        cr_assert_eq(w, (sr_wire)i, "%s", c);
    }
    static const char *const not_codes[] = {"", "E", "E100", "E10011", "e1001", "E1000", "E6001", "OK", "00", " 0"};
    for (size_t i = 0; i < sizeof not_codes / sizeof *not_codes; i++) {
        sr_wire w = SR_WIRE_PARAM;
        cr_assert_eq(sr_wire_parse(not_codes[i], &w), -1, "\"%s\" parsed", not_codes[i]);
        cr_assert_eq(w, SR_WIRE_PARAM, "\"%s\": out changed", not_codes[i]);
    }
    cr_assert_eq(sr_wire_parse(NULL, &(sr_wire){0}), -1);
    /* a value outside the table reads as an internal error, never NULL */
    cr_assert_str_eq(sr_wire_code(SR_WIRE__COUNT), "E9001");
    cr_assert_str_eq(sr_wire_code((sr_wire)-1), "E9001");
    cr_assert_eq(sr_wire_status(SR_WIRE__COUNT), 500);
    cr_assert_eq(sr_wire_transient(SR_WIRE__COUNT), 1);
}

/* a gateway's result code: the table's codes, and "OK" (the OK row's name) */
Test(wire, a_gateways_result_code)
{
    for (int i = 0; i < SR_WIRE__COUNT; i++) {
        sr_wire w = SR_WIRE__COUNT;
        cr_assert_eq(sr_wire_parse_result(sr_wire_code((sr_wire)i), &w), 0, "%s", sr_wire_code((sr_wire)i));
        cr_assert_eq(w, (sr_wire)i);
    }
    sr_wire w = SR_WIRE_PARAM;
    cr_assert_eq(sr_wire_parse_result("OK", &w), 0);
    cr_assert_eq(w, SR_WIRE_OK);
    static const char *const not_codes[] = {"", "ok", "PARAM", "INTERNAL", "OK ", "E6001"};
    for (size_t i = 0; i < sizeof not_codes / sizeof *not_codes; i++) {
        w = SR_WIRE_PARAM;
        cr_assert_eq(sr_wire_parse_result(not_codes[i], &w), -1, "\"%s\" parsed", not_codes[i]);
        cr_assert_eq(w, SR_WIRE_PARAM, "\"%s\": out changed", not_codes[i]);
    }
    cr_assert_eq(sr_wire_parse_result(NULL, &w), -1);
}

Test(wire, every_row_has_its_default_message)
{
    static const struct {
        sr_wire w;
        const char *msg;
    } msgs[] = {
        {SR_WIRE_OK, "OK"},
        {SR_WIRE_PARAM, "invalid parameter"},
        {SR_WIRE_JSON, "malformed JSON"},
        {SR_WIRE_LARGE, "payload too large"},
        {SR_WIRE_UNAUTH, "not authenticated"},
        {SR_WIRE_EXPIRED, "session expired"},
        {SR_WIRE_FORBIDDEN, "forbidden"},
        {SR_WIRE_UNKNOWN, "unknown ID"},
        {SR_WIRE_CONFLICT, "conflict"},
        {SR_WIRE_GW_DOWN, "gateway not connected"},
        {SR_WIRE_GW_TIMEOUT, "the gateway did not answer in time"},
        {SR_WIRE_DEVICE, "device or field error reported by the gateway"},
        {SR_WIRE_REJECTED, "control value rejected"},
        {SR_WIRE_SIGNATURE, "signature verification failed"},
        {SR_WIRE_DECRYPT, "decryption failed"},
        {SR_WIRE_CERT, "certificate unknown, expired or revoked"},
        {SR_WIRE_INTERNAL, "internal error"},
        {SR_WIRE_BUSY, "server busy, retry later"},
    };
    cr_assert_eq(sizeof msgs / sizeof *msgs, SR_WIRE__COUNT);
    for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++)
        cr_expect_str_eq(sr_wire_msg(msgs[i].w), msgs[i].msg, "%s", sr_wire_code(msgs[i].w));
}

/* Every engine code maps to a defined wire error, by the table's RCS
 * column: the engine's own refusals to the message's fault (E1xxx, E3xxx),
 * everything about the server's state to E9xxx. The pairs are the mapping
 * the bindings used before the table (sr_gw_code_of_rc), so the wire bytes
 * did not change. */
Test(wire, every_engine_code_maps_to_a_wire_error)
{
    static const struct {
        int rc;
        sr_wire w;
    } map[] = {
        {SR_OK, SR_WIRE_OK},           {SR_EINVAL, SR_WIRE_PARAM},      {SR_ECODEC, SR_WIRE_PARAM},
        {SR_ETOOBIG, SR_WIRE_LARGE},   {SR_ENOTFOUND, SR_WIRE_UNKNOWN}, {SR_ECONFLICT, SR_WIRE_CONFLICT},
        {SR_EFULL, SR_WIRE_BUSY},      {SR_ENOSPC, SR_WIRE_BUSY},       {SR_EPOISONED, SR_WIRE_BUSY},
        {SR_ECLOSED, SR_WIRE_BUSY},    {SR_EIO, SR_WIRE_BUSY},          {SR_ENOMEM, SR_WIRE_INTERNAL},
        {SR_ECORRUPT, SR_WIRE_INTERNAL}, {SR_ETLS, SR_WIRE_INTERNAL},   {SR_EKEY, SR_WIRE_INTERNAL},
        {SR_EVERSION, SR_WIRE_INTERNAL}, {SR_EEXIST, SR_WIRE_INTERNAL}, {SR_ELOCKED, SR_WIRE_INTERNAL},
        {SR_ECRYPTO, SR_WIRE_INTERNAL}, {SR_EDB, SR_WIRE_INTERNAL},     {SR_EERASED, SR_WIRE_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        cr_expect_eq(sr_wire_of_rc(map[i].rc), map[i].w, "%s -> %s, want %s", sr_err_name(map[i].rc),
                     sr_wire_code(sr_wire_of_rc(map[i].rc)), sr_wire_code(map[i].w));
        cr_expect(sr_wire_msg_of_rc(map[i].rc)[0], "%s has no message", sr_err_name(map[i].rc));
    }
    /* every code of codecs/base/sr_error.h is one of the pairs above: a new
     * SR_E... code gets a row (wire.c also checks it at compile time) */
    int n = 0;
#define COUNT_ERR(name, val, msg) n += (val) <= 0;
    SR_ERROR_MAP(COUNT_ERR)
#undef COUNT_ERR
    cr_assert_eq((size_t)n, sizeof map / sizeof *map, "sr_error.h has %d codes <= 0; the mapping above %zu", n,
                 sizeof map / sizeof *map);
    /* not an engine code: an internal error */
    cr_assert_eq(sr_wire_of_rc(-31), SR_WIRE_INTERNAL);
    cr_assert_eq(sr_wire_of_rc(-1000), SR_WIRE_INTERNAL);
    cr_assert_eq(sr_wire_of_rc(SR_DONE), SR_WIRE_INTERNAL);
    /* the acknowledgement outcome is the wire error's class: one mapping */
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        cr_expect_eq(sr_gw_outcome_rc(map[i].rc), sr_gw_outcome_code(map[i].w), "%s", sr_err_name(map[i].rc));
    /* the messages a gateway gets for the server's state name it */
    cr_assert_str_eq(sr_wire_msg_of_rc(SR_EFULL), "server busy (writer queue full)");
    cr_assert_str_eq(sr_wire_msg_of_rc(SR_ENOSPC), "no space left on the server's disk");
    cr_assert_str_eq(sr_wire_msg_of_rc(SR_EINVAL), sr_strerror(SR_EINVAL));
}

/* docs/api/openapi.yaml, components/schemas/ErrorCode: its enum lists the
 * table's codes (all but "0"), no more, no fewer. */
Test(wire, the_table_is_the_openapi_error_codes)
{
    FILE *f = fopen(OPENAPI, "r");
    cr_assert(f, "cannot open %s", OPENAPI);
    char line[512], list[2048] = "";
    int in = 0, collecting = 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "    ErrorCode:") == line) in = 1;
        else if (in && !collecting && strstr(line, "enum: [")) {
            collecting = 1;
            strncat(list, strstr(line, "[") + 1, sizeof list - strlen(list) - 1);
        } else if (collecting)
            strncat(list, line, sizeof list - strlen(list) - 1);
        if (collecting && strchr(list, ']')) break;
    }
    fclose(f);
    cr_assert(collecting && strchr(list, ']'), "no ErrorCode enum in %s", OPENAPI);
    *strchr(list, ']') = 0;
    int seen[SR_WIRE__COUNT] = {0}, ndoc = 0;
    for (char *tok = strtok(list, ", \n"); tok; tok = strtok(NULL, ", \n")) {
        sr_wire w;
        cr_expect_eq(sr_wire_parse(tok, &w), 0, "openapi.yaml lists %s, which is not in api/wire.h", tok);
        if (sr_wire_parse(tok, &w) == 0) seen[w]++;
        ndoc++;
    }
    cr_assert_gt(ndoc, 10, "only %d codes read from %s", ndoc, OPENAPI);
    for (int i = 1; i < SR_WIRE__COUNT; i++)
        cr_expect_eq(seen[i], 1, "%s is listed %d times in openapi.yaml's ErrorCode", sr_wire_code((sr_wire)i), seen[i]);
    cr_expect_eq(seen[SR_WIRE_OK], 0, "\"0\" is not an error code");
}
