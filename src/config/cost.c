#include "config/cost.h"

#include <stdio.h>
#include <string.h>

double cost_usd(const cfg_price_t *price, long prompt, long cached, long completion)
{
    if (prompt < 0) prompt = 0;
    if (completion < 0) completion = 0;
    if (cached < 0) cached = 0;
    if (cached > prompt) cached = prompt;
    return ((double)(prompt - cached) * price->input + (double)cached * price->cached +
            (double)completion * price->output) /
           1e6;
}

void cost_format(double usd, char *out, size_t n)
{
    if (!(usd > 0)) usd = 0;
    snprintf(out, n, "%.10f", usd);
    char *dot = strchr(out, '.');
    if (!dot) return;
    char *e = out + strlen(out);
    while (e > dot + 1 && e[-1] == '0') *--e = '\0';
    if (e == dot + 1 && e[-1] == '0') *--e = '\0';
    if (e[-1] == '.') e[-1] = '\0';
}
