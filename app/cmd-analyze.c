/* (being written: placeholder so the tree links) */
#include <stdio.h>
#include "commands.h"
int ms_cmd_analyze(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moescope analyze: not available yet\n");
    return 1;
}
