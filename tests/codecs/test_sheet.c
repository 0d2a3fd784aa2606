#include <criterion/criterion.h>
Test(stub, pending) { cr_assert(1); }
