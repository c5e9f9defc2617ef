/*
 * cost — what one request cost, from the deployment's prices (USD per 1M
 * tokens: input, output, cached input) and its normalised usage.
 *
 * prompt tokens include the cached ones (OpenAI's convention, which every
 * provider's usage is normalised to): cost = (prompt - cached) * input +
 * cached * cached_price + completion * output, all / 1e6. Unknown counts
 * (< 0) count as 0. Pure; no state.
 */
#ifndef SKULD_CONFIG_COST_H
#define SKULD_CONFIG_COST_H

#include <stddef.h>

#include "config/config.h"

double cost_usd(const cfg_price_t *price, long prompt, long cached, long completion);
/* Decimal USD with up to 10 places and no exponent or trailing zeros: "0.000492", "0". */
void cost_format(double usd, char *out, size_t n);

#endif
