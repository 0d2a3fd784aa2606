/* tests/support/fault_alloc.h -- fail the N-th allocation made through
 * sr_malloc/sr_realloc (installed with sr_set_allocator). */
#ifndef SR_FAULT_ALLOC_H
#define SR_FAULT_ALLOC_H
void fault_alloc_install(void);
void fault_alloc_arm(unsigned long n); /* 0: never fail; resets the count */
int fault_alloc_fired(void);
void fault_alloc_uninstall(void);
#endif
