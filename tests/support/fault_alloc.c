#include "fault_alloc.h"

#include "codecs/base/sr_alloc.h"

#include <stdatomic.h>
#include <stdlib.h>

static atomic_ulong count, target;
static atomic_int fired;

static int should_fail(void)
{
    unsigned long t = atomic_load(&target);
    if (!t) return 0;
    if (atomic_fetch_add(&count, 1) + 1 == t) {
        atomic_store(&fired, 1);
        return 1;
    }
    return 0;
}
static void *fm(size_t n) { return should_fail() ? NULL : malloc(n); }
static void *fr(void *p, size_t n) { return should_fail() ? NULL : realloc(p, n); }

void fault_alloc_install(void)
{
    static const sr_allocator a = {fm, fr, free};
    sr_set_allocator(&a);
}
void fault_alloc_arm(unsigned long n)
{
    atomic_store(&count, 0);
    atomic_store(&fired, 0);
    atomic_store(&target, n);
}
int fault_alloc_fired(void) { return atomic_load(&fired); }
void fault_alloc_uninstall(void) { sr_set_allocator(NULL); }
