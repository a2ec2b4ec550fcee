/* Unit: st_sha1 against the FIPS 180 examples, and against sha1sum at the padding edges (55, 56,
 * 63, 64 bytes and around). */
#include <stdio.h>
#include <string.h>

#include "st_sha1.h"
#include "st_test.h"

static void check(const char *data, size_t len, const char *want)
{
    char hex[41];
    st_sha1_hex(data, len, hex);
    ST_EQ_STR(hex, want);
}

static void test_vectors(void)
{
    check("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    check("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes */
    check(two, strlen(two), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    check("The quick brown fox jumps over the lazy dog", 43,
          "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
}

/* Lengths around the padding boundaries, against sha1sum. */
static void test_padding_edges(void)
{
    static const size_t lens[] = {55, 56, 63, 64, 65, 119, 120, 1000};
    char buf[1001];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char cmd[1200], want[64] = "", hex[41];
        snprintf(cmd, sizeof cmd, "printf '%%s' '%.*s' | sha1sum", (int)lens[i], buf);
        FILE *p = popen(cmd, "r");
        ST_REQUIRE(p != NULL);
        ST_REQUIRE(fscanf(p, "%40s", want) == 1);
        pclose(p);
        st_sha1_hex(buf, lens[i], hex);
        ST_EQ_STR(hex, want);
    }
}

int main(void)
{
    ST_RUN(test_vectors);
    ST_RUN(test_padding_edges);
    return st_test_summary();
}
