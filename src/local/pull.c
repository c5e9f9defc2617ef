/* pull — see pull.h. */
#include "local/pull.h"

#include <stdio.h>

int pull_main(int argc, char **argv)
{
    fprintf(stderr, "skuld pull: not built yet\n");
    return 1;
}
