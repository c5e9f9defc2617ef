/*
 * fuzz_jscan — the one-pass request-body scanner (src/core/jscan.h),
 * differential against jansson.
 *
 * Feeds: any bytes as a request body to jscan_body().
 *
 * Checks, beyond "no crash" (ASan/UBSan): the oracle the unit test uses
 * (tests/common/jscan_oracle.h): whenever the scanner accepts, jansson's
 * json_loadb(JSON_REJECT_DUPLICATES) must accept an object and agree on every
 * field the scanner reports (types, max_tokens values, the model's bytes).
 * The scanner may defer (reject) anything it is unsure about; it must never
 * accept what jansson rejects. The body is an exact-size heap copy, so ASan
 * flags any read past it (the scanner gets no NUL terminator).
 * The same bytes go to jscan_usage() (an answer's usage object, bytes after
 * it ignored) under jscan_usage_oracle().
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../common/jscan_oracle.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *b = fz_dup(data, size);
    char why[2048];
    int rc = jscan_oracle(b, size, why, sizeof why);
    if (rc == JSCAN_ORACLE_DISAGREE) {
        fprintf(stderr, "%s\n", why);
        FZ_CHECK(!"jscan and jansson disagree");
    }
    if (jscan_usage_oracle(b, size, why, sizeof why) == JSCAN_ORACLE_DISAGREE) {
        fprintf(stderr, "%s\n", why);
        FZ_CHECK(!"jscan_usage and jansson disagree");
    }
    free(b);
    return 0;
}
