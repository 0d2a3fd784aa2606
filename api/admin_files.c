/* api/admin_files.c -- /admin/v1: documents' and files' owners, grants and share lists, R-PO-2 (part DOCFILES).
 * Its route table (api/admin_int.h); the dispatcher is api/admin_http.c. */
#include "api/admin_int.h"

const sr_route sr_admin_files_routes[] = {{0}};
const size_t sr_admin_files_nroutes = 0;
