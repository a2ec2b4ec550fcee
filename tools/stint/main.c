/* main.c - the stint command: dispatches `stint <command> [options]` to tools/stint/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "st_log.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
#define STINT_COMMAND(name, summary) {#name, cmd_##name, summary},
#include "commands.def"
#undef STINT_COMMAND
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: stint <command> [options]   (stint <command> -h for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-18s %s\n", commands[i].name, commands[i].summary);
}

int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("stint %s\n", STINT_VERSION);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    st_log_init("stint");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        /* "stint catalog import" is the command "catalog" with argv "import ...". */
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "stint: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return 2;
}
