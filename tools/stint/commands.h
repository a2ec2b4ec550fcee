/* commands.h - the subcommands of the stint command; each lives in tools/stint/cmd_<name>.c
 * and returns the process exit code (0 ok, 1 failure, 2 usage error). */
#ifndef STINT_COMMANDS_H
#define STINT_COMMANDS_H

int cmd_version(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);

#endif
