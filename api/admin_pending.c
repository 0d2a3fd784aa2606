/* api/admin_pending.c -- /admin/v1: the two-person rule: pending changes, approve, reject (part PENDING).
 * Its route table (api/admin_int.h); the dispatcher is api/admin_http.c. */
#include "api/admin_int.h"

const sr_route sr_admin_pending_routes[] = {{0}};
const size_t sr_admin_pending_nroutes = 0;
