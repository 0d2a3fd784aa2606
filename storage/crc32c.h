/* storage/crc32c.h -- CRC-32C (Castagnoli), hardware-accelerated on x86-64
 * with SSE4.2, table-driven elsewhere. sr_crc32c(0, p, n) is the CRC of p. */
#ifndef SR_CRC32C_H
#define SR_CRC32C_H
#include <stddef.h>
#include <stdint.h>
uint32_t sr_crc32c(uint32_t crc, const void *p, size_t n);
#endif
