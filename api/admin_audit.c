/* api/admin_audit.c -- /admin/v1: audit events for auditors and operator admins (part AUDIT).
 * Its route table (api/admin_int.h); the dispatcher is api/admin_http.c. */
#include "api/admin_int.h"

const sr_route sr_admin_audit_routes[] = {{0}};
const size_t sr_admin_audit_nroutes = 0;
