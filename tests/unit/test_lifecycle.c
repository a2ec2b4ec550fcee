/* Unit: st_lifecycle - a stop requested from code is a stop; a failed stop (a fatal error in a
 * librdkafka thread) is also marked failed, so the service exits non-zero; a plain stop is not. */
#include "st_lifecycle.h"
#include "st_test.h"

static void test_plain_then_failed_stop(void)
{
    ST_CHECK(!st_lifecycle_stopping());
    ST_CHECK(!st_lifecycle_failed());
    st_lifecycle_request_stop();
    ST_CHECK(st_lifecycle_stopping());
    ST_CHECK(!st_lifecycle_failed());
    ST_CHECK(st_lifecycle_sleep_ms(10000)); /* returns at once: stopping */
    st_lifecycle_request_failed_stop();
    ST_CHECK(st_lifecycle_stopping());
    ST_CHECK(st_lifecycle_failed());
}

int main(void)
{
    ST_RUN(test_plain_then_failed_stop);
    return st_test_summary();
}
