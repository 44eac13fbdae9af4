/* (being written: placeholder so the tree links) */
#include <stdio.h>
#include "commands.h"
int ms_cmd_export(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moescope export: not available yet\n");
    return 1;
}
int ms_cmd_import(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moescope import: not available yet\n");
    return 1;
}
int ms_cmd_sql(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moescope sql: not available yet\n");
    return 1;
}
