/*
 * pull — `skuld pull`: download a GGUF model over HTTP(S) with libcurl's easy
 * API (the CLI, not a worker loop, so blocking is fine here).
 *
 *   skuld pull URL [-o DIR] [--sha256 HEX]
 *   skuld pull --catalog FILE auto [-o DIR]
 *
 * The file is written to DIR/NAME.part (NAME = last path segment of the URL)
 * and renamed to DIR/NAME only once complete and, when a checksum is known,
 * verified (OpenSSL EVP SHA-256). A .part left by an interrupted run is
 * resumed with a Range request (a server that ignores Range and answers 200
 * restarts it from zero: the .part is truncated before any byte is written,
 * so totals and progress are the whole file's; a 206 for another range than
 * the one asked is refused); a checksum mismatch deletes the .part, so
 * nothing is ever left under the final name that was not verified. The head
 * of the final answer (after redirects) decides what its body is: the file
 * (200, 206), nothing (416: the .part is whole), or an error (any other
 * status), whose body is never written: its first line (capped) goes into
 * the message with the status, and the .part is removed, except one with
 * bytes from an earlier run when the error is transient (5xx, 429, 408). Progress: a bar redrawn in
 * place on a terminal, plain lines (every 10%) otherwise.
 *
 * --catalog FILE: a YAML list of {name, url, sha256, ram_gb, kind}; `auto`
 * picks the entry that fits the memory available (MemAvailable): the largest
 * `ram_gb` that fits, preferring kind `standard` over `ternary`/`1bit` when
 * both fit, so ordinary machines get e.g. Llama 3 8B and weak ones a BitNet.
 */
#ifndef SKULD_LOCAL_PULL_H
#define SKULD_LOCAL_PULL_H

#include <stdbool.h>
#include <stddef.h>

int pull_main(int argc, char **argv);

/* What the head of one response says (pull_header_line). */
typedef struct pull_resp {
    long status;           /* 0 until a status line was read */
    char reason[64];       /* its reason phrase, control bytes as '?' */
    long long range_start; /* Content-Range: bytes START-...; -1 when absent */
    bool location;         /* a Location header (a redirect to follow) */
} pull_resp_t;

/* One line of a response head (as libcurl hands them over, CRLF included
 * or not) into r; a status line starts a new response. 1 at the blank line
 * that ends the head, else 0. Pure. */
int pull_header_line(pull_resp_t *r, const char *line, size_t n);
/* The first non-empty line of an error answer's body into out (cap bytes
 * with the NUL): control bytes as '?', never cut inside a UTF-8 sequence,
 * trailing blanks trimmed. Pure. */
void pull_error_line(const char *body, size_t n, char *out, size_t cap);

typedef struct pull_entry {
    char *name, *url, *sha256, *kind;
    double ram_gb;
} pull_entry_t;

/* Index of the entry `auto` picks for mem_gb of available memory, or -1. */
int pull_pick_auto(const pull_entry_t *v, size_t n, double mem_gb);

#endif
