/* (being written: placeholder so the tree links) */
#include <stdio.h>
#include "commands.h"
int ms_cmd_info(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moescope info: not available yet\n");
    return 1;
}
int ms_cmd_tokenize(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moescope tokenize: not available yet\n");
    return 1;
}
int ms_cmd_dump(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moescope dump: not available yet\n");
    return 1;
}
int ms_cmd_generate(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moescope generate: not available yet\n");
    return 1;
}
int ms_cmd_perplexity(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moescope perplexity: not available yet\n");
    return 1;
}
