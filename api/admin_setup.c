/* api/admin_setup.c -- /admin/v1: an operator's set-up: sheet import/export, masters, gateways, apps, grants, certificates (part SETUP).
 * Its route table (api/admin_int.h); the dispatcher is api/admin_http.c. */
#include "api/admin_int.h"

const sr_route sr_admin_setup_routes[] = {{0}};
const size_t sr_admin_setup_nroutes = 0;
