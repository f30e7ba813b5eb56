/* crc32c.h - CRC-32C (Castagnoli), the checksum of every metadata block. */
#ifndef VCFS_CRC32C_H
#define VCFS_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* Continue a CRC: start with crc = 0.  crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t vcfs_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
