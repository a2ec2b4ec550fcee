/* st_config.h - table-driven configuration shared by every service and tool.
 *
 * Each program describes its settings in one or more tables of st_config_entry_t that point into
 * its own config struct. Precedence, lowest first: table defaults < `-F file` < environment
 * (STINT_<NAME>, the key upper-cased with '.' and '-' turned into '_') < command-line flags
 * (`--key value` or `--key=value`). `-X prop=value` (and, in the -F file or environment, keys of
 * the form `kafka.<prop>` / STINT_KAFKA_<PROP> that are not stint keys) go to librdkafka.
 * A secret setting (and a secret librdkafka property given as STINT_RDKAFKA_<PROP>) can instead
 * be read from the file named by <VAR>_FILE (e.g. STINT_REDIS_PASSWORD_FILE=/run/secrets/x, the
 * Docker and Kubernetes secrets convention): the whole file, one trailing newline removed; an
 * unreadable or empty file, or both VAR and VAR_FILE set, is an error naming the variable.
 * `--dump-config` prints the effective configuration with secrets redacted. Every value is
 * validated (type, bounds) before the program connects anywhere, and errors name the key, the bad
 * value and where it came from. */
#ifndef ST_CONFIG_H
#define ST_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { ST_CFG_STRING, ST_CFG_INT, ST_CFG_DOUBLE, ST_CFG_BOOL } st_cfg_type_t;

typedef struct {
    const char *key;    /* "redis.port" */
    st_cfg_type_t type; /* STRING: char * (owned by the config), INT: int64_t, DOUBLE, BOOL */
    const char *default_value; /* as text; NULL = unset (strings only) */
    double min, max;           /* bounds for INT and DOUBLE; ignored when min > max */
    size_t offset;             /* offsetof() the field in the program's struct */
    bool
        secret; /* redacted by --dump-config; may be read from the file named by STINT_<KEY>_FILE */
    char short_flag; /* e.g. 'b' for -b; 0 = none */
    const char *help;
} st_config_entry_t;

#define ST_CFG_NOBOUNDS 1, 0

typedef struct st_config_s st_config_t;

/* A librdkafka property collected from -X, the -F file or STINT_KAFKA_* variables. */
typedef struct {
    char *name;
    char *value;
} st_config_prop_t;

/* Creates an empty configuration for program (used in usage text). Never returns NULL. */
st_config_t *st_config_new(const char *program, const char *summary);
void st_config_destroy(st_config_t *cfg);

/* Adds a table (terminated by an entry with key == NULL) whose offsets refer to base. The table
 * and base are borrowed and must outlive cfg. Defaults are applied immediately. Returns 0, or -1
 * when a default is invalid (a programming error, described in errstr). */
int st_config_add_table(st_config_t *cfg, const st_config_entry_t *table, void *base, char *errstr,
                        size_t errstr_size);

/* Describes extra positional arguments for the usage text, e.g. "<topic>". */
void st_config_set_positional(st_config_t *cfg, const char *usage);

typedef enum {
    ST_CONFIG_OK = 0,    /* run the program */
    ST_CONFIG_EXIT = 1,  /* -h or --dump-config printed what was asked: exit 0 */
    ST_CONFIG_USAGE = -1 /* bad flag or value: errstr says why; print usage, exit 2 */
} st_config_result_t;

/* Applies -F file, the environment and argv in precedence order. Positional arguments that
 * remain are moved to the front of argv and counted in *npositional (may be NULL if none are
 * accepted). */
st_config_result_t st_config_load(st_config_t *cfg, int argc, char **argv, int *npositional,
                                  char *errstr, size_t errstr_size);

/* Sets one key from text, as if it came from `source` (used by load; exposed for tests). */
int st_config_set(st_config_t *cfg, const char *key, const char *value, const char *source,
                  char *errstr, size_t errstr_size);

/* Prints usage (flags of every table with defaults and env names) to out. */
void st_config_usage(const st_config_t *cfg, FILE *out);
/* Prints the effective configuration, one `key=value  # source` per line, secrets redacted
 * (the source still says where they came from, e.g. "file STINT_REDIS_PASSWORD_FILE"). */
void st_config_dump(const st_config_t *cfg, FILE *out);

/* The librdkafka properties gathered so far (borrowed). */
const st_config_prop_t *st_config_kafka_props(const st_config_t *cfg, size_t *n);

/* The environment variable name of a key ("redis.port" -> "STINT_REDIS_PORT") into buf. */
const char *st_config_env_name(const char *key, char *buf, size_t size);

#endif
