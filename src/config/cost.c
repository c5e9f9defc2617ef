#include "config/cost.h"

#include "core/buf.h"

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
    char t[BUF_FIXED_MAX];
    buf_fmt_fixed(t, usd, 10);
    snprintf(out, n, "%s", t);
    char *dot = strchr(out, '.');
    if (!dot) return;
    char *e = out + strlen(out);
    while (e > dot + 1 && e[-1] == '0') *--e = '\0';
    if (e == dot + 1 && e[-1] == '0') *--e = '\0';
    if (e[-1] == '.') e[-1] = '\0';
}
