/* st_sha1.h - SHA-1 (FIPS 180-4), for what names content by it: Redis names a Lua script by the
 * SHA-1 of its source, so stint knows a script's EVALSHA name without asking the server. Not for
 * security. */
#ifndef ST_SHA1_H
#define ST_SHA1_H

#include <stddef.h>

/* Writes the 40 lowercase hex digits of SHA-1(data) and a NUL to hex. */
void st_sha1_hex(const void *data, size_t len, char hex[41]);

#endif
