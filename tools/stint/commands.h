/* commands.h - the subcommands of the stint command (listed in commands.def); each returns the
 * process exit code (0 ok, 1 failure, 2 usage error). argv[0] is the command's name. */
#ifndef STINT_COMMANDS_H
#define STINT_COMMANDS_H

#define STINT_COMMAND(name, summary) int cmd_##name(int argc, char **argv);
#include "commands.def"
#undef STINT_COMMAND

#endif
