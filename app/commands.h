/* commands.h — the `moescope` subcommands.  Each takes the argv that follows
 * the subcommand name (argv[0] is the subcommand) and returns the process
 * exit status: 0 success, 1 failure (one line on stderr), 2 usage error. */
#ifndef MS_COMMANDS_H
#define MS_COMMANDS_H

int ms_cmd_info(int argc, char **argv);
int ms_cmd_tokenize(int argc, char **argv);
int ms_cmd_dump(int argc, char **argv);
int ms_cmd_generate(int argc, char **argv);
int ms_cmd_perplexity(int argc, char **argv);
int ms_cmd_synth(int argc, char **argv);
int ms_cmd_convert(int argc, char **argv);
int ms_cmd_bench(int argc, char **argv);
int ms_cmd_trace(int argc, char **argv);
int ms_cmd_export(int argc, char **argv);
int ms_cmd_import(int argc, char **argv);
int ms_cmd_merge(int argc, char **argv);
int ms_cmd_sql(int argc, char **argv);
int ms_cmd_analyze(int argc, char **argv);
int ms_cmd_demo(int argc, char **argv);
int ms_cmd_experiment(int argc, char **argv);
int ms_cmd_compare(int argc, char **argv);
int ms_cmd_sweep(int argc, char **argv);
int ms_cmd_plot(int argc, char **argv);

#endif
