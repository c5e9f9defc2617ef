/* pull — see pull.h. */
#include "local/pull.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/yaml_tree.h"

#define PULL_CATALOG_MAX (1u << 20)
#define PULL_ERRBODY_MAX 4096 /* bytes of an error answer read, for its first line */

typedef struct pull__xfer {
    FILE *f;
    CURL *curl;
    long long offset;  /* bytes already in the .part when this transfer began */
    long long written; /* bytes written by this transfer */
    pull_resp_t resp;  /* the response whose head is being read, then the final one */
    bool decided;      /* the final response's head is read: what its body is for */
    bool http_error;   /* ... an error: its body is the message, not the model */
    bool bad_range;    /* ... a 206 for another range than the one asked */
    bool restart;      /* the server ignored Range: the .part was truncated */
    bool io_error;     /* the .part could not be truncated or written */
    char errbody[PULL_ERRBODY_MAX];
    size_t errlen;
    bool tty;
    int last_pct; /* plain output: last 10% step printed */
    double t0, last_draw;
    const char *name;
} pull__xfer_t;

/* ---------- parsing what the server answers (pure) ---------- */

static long long pull__digits(const char *p, const char *end, const char **next)
{
    long long v = -1;
    while (p < end && *p >= '0' && *p <= '9' && v < (1ll << 56)) {
        v = (v < 0 ? 0 : v * 10) + (*p - '0');
        p++;
    }
    *next = p;
    return v;
}

static bool pull__name_is(const char *p, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n > k && p[k] == ':' && strncasecmp(p, name, k) == 0;
}

int pull_header_line(pull_resp_t *r, const char *line, size_t n)
{
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    const char *end = line + n, *q;
    if (n == 0) return 1;
    if (n >= 5 && !memcmp(line, "HTTP/", 5)) { /* a new response: HTTP/1.1 206 Partial Content */
        memset(r, 0, sizeof *r);
        r->range_start = -1;
        const char *sp = memchr(line, ' ', n);
        if (!sp) return 0;
        long long code = pull__digits(sp + 1, end, &q);
        r->status = code >= 100 && code <= 999 ? (long)code : 0;
        while (q < end && *q == ' ') q++;
        size_t k = 0;
        for (; q < end && k + 1 < sizeof r->reason; q++)
            r->reason[k++] = (unsigned char)*q < 0x20 || *q == 0x7f ? '?' : *q;
        r->reason[k] = '\0';
        return 0;
    }
    if (pull__name_is(line, n, "location")) {
        r->location = true;
    } else if (pull__name_is(line, n, "content-range")) { /* bytes START-END/TOTAL */
        const char *p = line + strlen("content-range") + 1;
        while (p < end && *p == ' ') p++;
        if ((size_t)(end - p) > 6 && !strncasecmp(p, "bytes ", 6))
            r->range_start = pull__digits(p + 6, end, &q);
    }
    return 0;
}

void pull_error_line(const char *body, size_t n, char *out, size_t cap)
{
    if (!cap) return;
    size_t i = 0, o = 0;
    while (i < n && (body[i] == '\r' || body[i] == '\n' || body[i] == ' ' || body[i] == '\t')) i++;
    for (; i < n && body[i] != '\r' && body[i] != '\n' && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)body[i];
        out[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    /* cut short: never inside a UTF-8 sequence */
    if (i < n && body[i] != '\r' && body[i] != '\n') {
        size_t k = o;
        while (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0x80) k--;
        if (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0xc0) {
            unsigned char lead = (unsigned char)out[k - 1];
            size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
            if (o - (k - 1) < need) o = k - 1;
        }
    }
    while (o && (out[o - 1] == ' ' || out[o - 1] == '\t')) o--;
    out[o] = '\0';
}

/* ---------- the transfer ---------- */

/* The head of the final response is read: decide what its body is. false: abort. */
static bool pull__decide(pull__xfer_t *x)
{
    const pull_resp_t *r = &x->resp;
    x->decided = true;
    if (r->status == 416 && x->offset > 0) return true; /* the .part is whole already */
    if (r->status == 206) {
        if (r->range_start != x->offset) {
            x->bad_range = true;
            return false;
        }
        return true;
    }
    if (r->status == 200) {
        if (x->offset > 0) { /* Range ignored: start over from byte 0 */
            if (ftruncate(fileno(x->f), 0) != 0 || fseek(x->f, 0, SEEK_SET) != 0) {
                x->io_error = true;
                return false;
            }
            x->offset = 0;
            x->restart = true;
        }
        return true;
    }
    x->http_error = true; /* 4xx, 5xx, and anything else that is not the file */
    return true;
}

static size_t pull__header(char *p, size_t size, size_t n, void *ud)
{
    pull__xfer_t *x = ud;
    size_t len = size * n;
    if (x->decided) return len; /* trailers */
    if (pull_header_line(&x->resp, p, len) == 1) {
        long st = x->resp.status;
        bool interim = (st >= 100 && st < 200) || (st >= 300 && st < 400 && x->resp.location);
        if (!interim && !pull__decide(x)) return 0;
    }
    return len;
}

static double pull__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t pull__write(char *p, size_t size, size_t n, void *ud)
{
    pull__xfer_t *x = ud;
    size_t len = size * n;
    if (!x->decided && !pull__decide(x)) return 0; /* a head without its blank line */
    if (x->http_error || x->resp.status == 416) {  /* never into the model: kept for the message */
        size_t room = sizeof x->errbody - x->errlen;
        memcpy(x->errbody + x->errlen, p, len < room ? len : room);
        x->errlen += len < room ? len : room;
        return x->errlen < sizeof x->errbody ? len : 0; /* enough read: stop */
    }
    if (fwrite(p, 1, len, x->f) != len) {
        x->io_error = true;
        return 0;
    }
    x->written += (long long)len;
    return len;
}

static void pull__mib(char *out, size_t n, double bytes)
{
    snprintf(out, n, "%.1f MiB", bytes / (1024.0 * 1024.0));
}

static int pull__progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
    pull__xfer_t *x = ud;
    if (!x->decided || x->http_error || x->resp.status == 416) return 0; /* not the file (yet) */
    double have = (double)(x->offset + dlnow),
           total = dltotal > 0 ? (double)(x->offset + dltotal) : 0;
    double now = pull__now(), el = now - x->t0;
    double rate = el > 0 ? (double)dlnow / el : 0;
    int pct = total > 0 ? (int)(have * 100.0 / total) : -1;
    char h[32], t[32], r[32];
    pull__mib(h, sizeof h, have);
    pull__mib(t, sizeof t, total);
    pull__mib(r, sizeof r, rate);
    if (x->tty) {
        if (now - x->last_draw < 0.1 && !(total > 0 && have >= total)) return 0;
        x->last_draw = now;
        char bar[31];
        int fill = pct < 0 ? 0 : pct * 30 / 100;
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : ' ';
        bar[30] = '\0';
        if (pct >= 0)
            fprintf(stderr, "\r%s [%s] %3d%% %s / %s  %s/s ", x->name, bar, pct, h, t, r);
        else
            fprintf(stderr, "\r%s %s  %s/s ", x->name, h, r);
        fflush(stderr);
    } else if (pct >= 0 && pct / 10 > x->last_pct) {
        x->last_pct = pct / 10;
        fprintf(stderr, "%s: %d%% (%s of %s)\n", x->name, pct / 10 * 10, h, t);
    }
    return 0;
}

/* Lowercase hex SHA-256 of a file into out[65]. 0 or -1. */
static int pull__sha256(const char *path, char out[65])
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1;
    unsigned char buf[1 << 16];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, f)) > 0)
        if (EVP_DigestUpdate(md, buf, n) != 1) rc = -1;
    if (ferror(f)) rc = -1;
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    if (rc == 0 && EVP_DigestFinal_ex(md, d, &dl) != 1) rc = -1;
    for (unsigned i = 0; rc == 0 && i < dl && i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
    EVP_MD_CTX_free(md);
    fclose(f);
    return rc;
}

static bool pull__hex64(const char *s)
{
    if (!s || strlen(s) != 64) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
            return false;
    return true;
}

/* File name from the URL's last path segment, without query or fragment. */
static int pull__name(const char *url, char *out, size_t n)
{
    const char *s = strstr(url, "://");
    s = s ? s + 3 : url;
    const char *end = s + strcspn(s, "?#");
    const char *slash = NULL;
    for (const char *p = s; p < end; p++)
        if (*p == '/') slash = p;
    if (!slash || slash + 1 >= end) return -1;
    size_t len = (size_t)(end - slash - 1);
    if (len >= n) return -1;
    memcpy(out, slash + 1, len);
    out[len] = '\0';
    if (!strcmp(out, ".") || !strcmp(out, "..") || strchr(out, '\\')) return -1;
    return 0;
}

static int pull__one(const char *url, const char *dir, const char *want_sha)
{
    char name[256], final[4096], part[4200];
    if (pull__name(url, name, sizeof name) != 0) {
        fprintf(stderr, "skuld pull: cannot take a file name from %s\n", url);
        return 2;
    }
    if (snprintf(final, sizeof final, "%s/%s", dir, name) >= (int)sizeof final) return 2;
    snprintf(part, sizeof part, "%s.part", final);
    struct stat st;
    if (stat(final, &st) == 0) {
        char got[65];
        if (want_sha && (pull__sha256(final, got) != 0 || strcasecmp(got, want_sha) != 0)) {
            fprintf(stderr, "skuld pull: %s exists but its sha256 is not %s; remove it first\n",
                    final, want_sha);
            return 1;
        }
        printf("%s: already present\n", final);
        return 0;
    }
    FILE *f = fopen(part, "ab");
    if (!f) {
        fprintf(stderr, "skuld pull: cannot open %s: %s\n", part, strerror(errno));
        return 1;
    }
    pull__xfer_t x = {.f = f, .tty = isatty(STDERR_FILENO) == 1, .last_pct = -1, .name = name};
    x.resp.range_start = -1;
    x.offset = ftell(f);
    if (x.offset < 0) x.offset = 0;
    if (x.offset > 0) fprintf(stderr, "%s: resuming at byte %lld\n", name, x.offset);
    CURL *c = curl_easy_init();
    if (!c) {
        fclose(f);
        return 1;
    }
    x.curl = c;
    x.t0 = pull__now();
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stall of 60 s ends the attempt */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "skuld/" SKULD_VERSION);
    curl_easy_setopt(c, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L); /* a proxy's 200 is not ours */
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, pull__header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, pull__write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, pull__progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    /* Range by hand, not CURLOPT_RESUME_FROM: curl refuses a 200 to a resume,
     * and we want to restart from zero then (pull__write truncates). */
    char range[48];
    snprintf(range, sizeof range, "%lld-", x.offset);
    if (x.offset > 0) curl_easy_setopt(c, CURLOPT_RANGE, range);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    if (x.tty && x.decided && !x.http_error) fputc('\n', stderr);
    bool flushed = fflush(f) == 0;
    fclose(f);
    long long have = x.offset + x.written;
    if (x.http_error) {
        char line[201];
        pull_error_line(x.errbody, x.errlen, line, sizeof line);
        fprintf(stderr, "skuld pull: %s answered HTTP %ld%s%s%s%s\n", url, x.resp.status,
                x.resp.reason[0] ? " " : "", x.resp.reason, line[0] ? ": " : "", line);
        /* A transient failure keeps what an earlier run fetched, to resume;
         * anything else (the file is gone, forbidden, ...) leaves nothing. */
        bool transient = x.resp.status >= 500 || x.resp.status == 429 || x.resp.status == 408;
        if (have > 0 && transient) {
            fprintf(stderr,
                    "skuld pull: %s is kept (%lld bytes); run the same command again to "
                    "resume\n",
                    part, have);
        } else {
            unlink(part);
        }
        return 1;
    }
    if (x.bad_range) {
        fprintf(stderr,
                "skuld pull: %s answered a range from byte %lld, not the %lld asked for; %s is "
                "kept\n",
                url, x.resp.range_start, x.offset, part);
        return 1;
    }
    if (x.decided && x.resp.status == 416 && x.offset > 0) {
        rc = CURLE_OK; /* nothing left to fetch: the .part is complete */
    } else if (rc == CURLE_OK && !x.decided) {
        rc = CURLE_RECV_ERROR; /* no final answer at all */
    }
    if (x.io_error) {
        fprintf(stderr, "skuld pull: cannot write %s: %s\n", part, strerror(errno));
        return 1;
    }
    if (rc != CURLE_OK || !flushed) {
        fprintf(stderr,
                "skuld pull: transfer interrupted after %lld bytes (%s); %s is kept, run the "
                "same command again to resume\n",
                have, errbuf[0] ? errbuf : curl_easy_strerror(rc), part);
        return 1;
    }
    if (x.restart)
        fprintf(stderr, "%s: the server ignored the range request; fetched whole from byte 0\n",
                name);
    if (want_sha) {
        char got[65];
        if (pull__sha256(part, got) != 0) {
            fprintf(stderr, "skuld pull: cannot read %s to verify it\n", part);
            return 1;
        }
        if (strcasecmp(got, want_sha) != 0) {
            unlink(part);
            fprintf(stderr, "skuld pull: checksum mismatch for %s: expected %s, got %s; deleted\n",
                    name, want_sha, got);
            return 1;
        }
    }
    if (rename(part, final) != 0) {
        fprintf(stderr, "skuld pull: cannot rename %s to %s: %s\n", part, final, strerror(errno));
        return 1;
    }
    printf("%s: %lld bytes%s\n", final, have, want_sha ? ", sha256 verified" : "");
    return 0;
}

/* ---------- --catalog ---------- */

int pull_pick_auto(const pull_entry_t *v, size_t n, double mem_gb)
{
    int best = -1;
    bool best_std = false;
    for (size_t i = 0; i < n; i++) {
        if (!(v[i].ram_gb > 0) || v[i].ram_gb > mem_gb) continue;
        bool std_kind = !v[i].kind || !strcmp(v[i].kind, "standard");
        if (best < 0 || (std_kind && !best_std) ||
            (std_kind == best_std && v[i].ram_gb > v[best].ram_gb)) {
            best = (int)i;
            best_std = std_kind;
        }
    }
    return best;
}

static double pull__mem_available_gb(void)
{
    const char *env = getenv("SKULD_PULL_MEM_GB"); /* tests and dry runs */
    if (env && *env) return strtod(env, NULL);
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb / (1024.0 * 1024.0);
}

static const char *pull__str(const ynode_t *map, const char *key)
{
    const ynode_t *v = ytree_map_get(map, key);
    return v && v->kind == YNODE_SCALAR && !ytree_is_null(v) ? v->str : NULL;
}

static int pull__catalog(const char *file, const char *which, const char *dir)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "skuld pull: cannot open %s: %s\n", file, strerror(errno));
        return 1;
    }
    char *data = malloc(PULL_CATALOG_MAX + 1);
    size_t len = data ? fread(data, 1, PULL_CATALOG_MAX + 1, f) : 0;
    fclose(f);
    if (!data || len > PULL_CATALOG_MAX) {
        free(data);
        fprintf(stderr, "skuld pull: %s is larger than 1 MiB\n", file);
        return 1;
    }
    ytree_error_t err;
    ytree_t *t = ytree_parse(data, len, &err);
    free(data);
    if (!t) {
        fprintf(stderr, "%s:%d:%d: %s\n", file, err.line, err.col, err.msg);
        return 1;
    }
    const ynode_t *root = ytree_root(t);
    int rc = 1;
    size_t n = root && root->kind == YNODE_SEQUENCE ? root->n : 0;
    pull_entry_t *v = calloc(n ? n : 1, sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        const ynode_t *m = root->items[i];
        v[i].name = (char *)pull__str(m, "name");
        v[i].url = (char *)pull__str(m, "url");
        v[i].sha256 = (char *)pull__str(m, "sha256");
        v[i].kind = (char *)pull__str(m, "kind");
        const char *ram = pull__str(m, "ram_gb");
        v[i].ram_gb = ram ? strtod(ram, NULL) : 0;
        if (m->kind != YNODE_MAPPING || !v[i].name || !v[i].url) {
            fprintf(stderr, "%s:%d:%d: a catalog entry needs name and url\n", file, m->line,
                    m->col);
            goto out;
        }
        if (v[i].sha256 && !pull__hex64(v[i].sha256)) {
            fprintf(stderr, "%s:%d:%d: sha256 must be 64 hex digits\n", file, m->line, m->col);
            goto out;
        }
    }
    if (n == 0) {
        fprintf(stderr, "skuld pull: %s holds no entries (a YAML list expected)\n", file);
        goto out;
    }
    int pick = -1;
    if (!strcmp(which, "auto")) {
        double mem = pull__mem_available_gb();
        pick = pull_pick_auto(v, n, mem);
        if (pick < 0) {
            fprintf(stderr, "skuld pull: no catalog entry fits %.1f GB of available memory\n", mem);
            goto out;
        }
        fprintf(stderr, "%.1f GB available: picking %s (%s, needs %.1f GB)\n", mem, v[pick].name,
                v[pick].kind ? v[pick].kind : "standard", v[pick].ram_gb);
    } else {
        for (size_t i = 0; i < n && pick < 0; i++)
            if (!strcmp(v[i].name, which)) pick = (int)i;
        if (pick < 0) {
            fprintf(stderr, "skuld pull: no entry named %s in %s\n", which, file);
            goto out;
        }
    }
    rc = pull__one(v[pick].url, dir, v[pick].sha256);
out:
    free(v);
    ytree_free(t);
    return rc;
}

int pull_main(int argc, char **argv)
{
    const char *url = NULL, *dir = ".", *sha = NULL, *catalog = NULL;
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--sha256") && i + 1 < argc)
            sha = argv[++i];
        else if (!strcmp(argv[i], "--catalog") && i + 1 < argc)
            catalog = argv[++i];
        else if (argv[i][0] != '-' && !url)
            url = argv[i];
        else {
            url = NULL;
            catalog = NULL;
            break;
        }
    }
    if (!url || (sha && !pull__hex64(sha)) || (catalog && sha)) {
        fprintf(stderr, "usage: skuld pull URL [-o DIR] [--sha256 HEX]\n"
                        "       skuld pull --catalog FILE auto|NAME [-o DIR]\n");
        return 2;
    }
    struct stat st;
    if (stat(dir, &st) != 0 && mkdir(dir, 0755) != 0) {
        fprintf(stderr, "skuld pull: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) return 1;
    int rc = catalog ? pull__catalog(catalog, url, dir) : pull__one(url, dir, sha);
    curl_global_cleanup();
    return rc;
}
