/*
 * local cli — the command-line verbs for local models, called from main():
 *   skuld demo-model -o PATH [--layers N] [--width N] [--ff N] [--heads N]
 *   skuld pull URL [-o DIR] [--sha256 HEX]
 *   skuld pull --catalog FILE auto [-o DIR]
 * and the embedded default's first-run step (write the demo model if absent).
 * Main thread only; these may block (they run before/instead of the gateway).
 */
#ifndef SKULD_LOCAL_CLI_H
#define SKULD_LOCAL_CLI_H

/* Exit codes: 0 ok, 1 failure, 2 usage error. */
int local_cli_demo_model(int argc, char **argv);
int local_cli_pull(int argc, char **argv);

/* Write LOCAL_DEMO_MODEL_PATH under the working directory if it is absent. 0 or -1. */
int local_cli_ensure_demo(void);

#endif
