/*
 * route cli — `skuld route explain -c FILE --model NAME --prompt TEXT [...]`.
 */
#ifndef SKULD_ROUTE_CLI_H
#define SKULD_ROUTE_CLI_H

/* Exit code. */
int route_cli(int argc, char **argv);

#endif
