/*
 * policy cli — `skuld keys create|list|revoke -c FILE ...`: manage virtual
 * keys directly in the configured store (store.url), synchronously, from the
 * command line (the gateway need not run; running instances pick the change
 * up within seconds through their periodic key refresh).
 */
#ifndef SKULD_POLICY_CLI_H
#define SKULD_POLICY_CLI_H

int policy_cli_keys(int argc, char **argv);

#endif
