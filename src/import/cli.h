/*
 * import/cli — the `skuld import` command: `skuld import litellm FILE
 * [--strict]` reads FILE (capped at 16 MiB, config_read_file), runs the
 * converter (import.h) and writes the skuld config to stdout and every
 * diagnostic to stderr as FILE:LINE:COL: ... lines.
 *
 * Exit status: 0 converted; 1 bad input (nothing written to stdout), or
 * --strict and something was not converted (the config is still written);
 * 2 a usage error. Runs on the main thread before anything else starts.
 */
#ifndef SKULD_IMPORT_CLI_H
#define SKULD_IMPORT_CLI_H

/* argv[1] is "import". */
int imp_cli(int argc, char **argv);

#endif
