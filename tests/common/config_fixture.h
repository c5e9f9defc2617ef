/*
 * config fixture for unit tests: a snapshot from inline YAML, or the test
 * fails with every error printed.
 */
#ifndef SKULD_TESTS_CONFIG_FIXTURE_H
#define SKULD_TESTS_CONFIG_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "config/config.h"

static inline config_t *cfg_ok(const char *yaml)
{
    cfg_errors_t errs = {0};
    config_t *c = config_load_string(yaml, strlen(yaml), "t.yaml", &errs);
    if (!c) config_errors_print(&errs, stderr);
    config_errors_free(&errs);
    assert_non_null(c);
    return c;
}

#endif
