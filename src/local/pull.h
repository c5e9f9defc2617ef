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
 * resumed with a Range request (a server that ignores Range restarts it from
 * zero); a checksum mismatch deletes the .part, so nothing is ever left under
 * the final name that was not verified. Progress: a bar redrawn in place on a
 * terminal, plain lines (every 10%) otherwise.
 *
 * --catalog FILE: a YAML list of {name, url, sha256, ram_gb, kind}; `auto`
 * picks the entry that fits the memory available (MemAvailable): the largest
 * `ram_gb` that fits, preferring kind `standard` over `ternary`/`1bit` when
 * both fit, so ordinary machines get e.g. Llama 3 8B and weak ones a BitNet.
 */
#ifndef SKULD_LOCAL_PULL_H
#define SKULD_LOCAL_PULL_H

#include <stddef.h>

int pull_main(int argc, char **argv);

typedef struct pull_entry {
    char *name, *url, *sha256, *kind;
    double ram_gb;
} pull_entry_t;

/* Index of the entry `auto` picks for mem_gb of available memory, or -1. */
int pull_pick_auto(const pull_entry_t *v, size_t n, double mem_gb);

#endif
