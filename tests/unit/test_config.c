/* Unit tests of st_config: precedence (defaults < -F file < environment < flags), librdkafka
 * pass-through, validation messages that name the key and the value, usage results. */
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "st_config.h"
#include "st_test.h"

typedef struct {
    char *brokers;
    int64_t port;
    double ratio;
    bool follow;
    char *password;
    char *log_level;
} cfg_t;

#define OFF(f) offsetof(cfg_t, f)
static const st_config_entry_t table[] = {
    {"kafka.brokers", ST_CFG_STRING, "127.0.0.1:19092", ST_CFG_NOBOUNDS, OFF(brokers), false, 'b',
     "brokers"},
    {"redis.port", ST_CFG_INT, "16379", 1, 65535, OFF(port), false, 0, "port"},
    {"model.ratio", ST_CFG_DOUBLE, "0.5", 0, 1, OFF(ratio), false, 0, "a ratio"},
    {"tail.follow", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(follow), false, 'f', "follow"},
    {"redis.password", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(password), true, 0, "secret"},
    {"log.level", ST_CFG_STRING, "info", ST_CFG_NOBOUNDS, OFF(log_level), false, 0, "level"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

static char tmpfile_path[64];

static void write_file(const char *text)
{
    snprintf(tmpfile_path, sizeof tmpfile_path, "/tmp/stint-config-test-%d.conf", (int)getpid());
    FILE *f = fopen(tmpfile_path, "w");
    fputs(text, f);
    fclose(f);
}

static void clear_env(void)
{
    unsetenv("STINT_KAFKA_BROKERS");
    unsetenv("STINT_REDIS_PORT");
    unsetenv("STINT_MODEL_RATIO");
    unsetenv("STINT_RDKAFKA_LINGER_MS");
    unsetenv("STINT_REDIS_PASSWORD");
    unsetenv("STINT_REDIS_PASSWORD_FILE");
    unsetenv("STINT_REDIS_PORT_FILE");
    unsetenv("STINT_RDKAFKA_SASL_PASSWORD");
    unsetenv("STINT_RDKAFKA_SASL_PASSWORD_FILE");
}

/* Writes bytes (len of them: the text may hold a NUL) to a secret file of its own. */
static const char *write_secret(const char *name, const char *bytes, size_t len)
{
    static char path[96];
    snprintf(path, sizeof path, "/tmp/stint-config-test-%d.%s", (int)getpid(), name);
    FILE *f = fopen(path, "w");
    fwrite(bytes, 1, len, f);
    fclose(f);
    return path;
}

static char *dump_text(st_config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    st_config_dump(cfg, f);
    fclose(f);
    return buf;
}

/* Loads argv (NULL-terminated) into a fresh config; returns the result and the config. */
static st_config_result_t load(cfg_t *c, st_config_t **out, char **argv, char *err, size_t errsize)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    memset(c, 0, sizeof *c);
    *out = st_config_new("test", "a test");
    if (st_config_add_table(*out, table, c, err, errsize) != 0)
        return ST_CONFIG_USAGE;
    int npos = 0;
    return st_config_load(*out, argc, argv, &npos, err, errsize);
}

/* The config holds exactly one librdkafka property, name=value. */
static void check_one_prop(const st_config_t *cfg, const char *name, const char *value)
{
    size_t n;
    const st_config_prop_t *props = st_config_kafka_props(cfg, &n);
    ST_EQ_INT(n, 1);
    if (n == 1) {
        ST_EQ_STR(props[0].name, name);
        ST_EQ_STR(props[0].value, value);
    }
}

static void test_defaults(void)
{
    cfg_t c;
    st_config_t *cfg;
    char err[256] = "";
    char *argv[] = {"test", NULL};
    clear_env();
    ST_EQ_INT(load(&c, &cfg, argv, err, sizeof err), ST_CONFIG_OK);
    ST_EQ_STR(c.brokers, "127.0.0.1:19092");
    ST_EQ_INT(c.port, 16379);
    ST_NEAR(c.ratio, 0.5, 0);
    ST_EQ_INT(c.follow, 0);
    ST_CHECK(c.password == NULL);
    st_config_destroy(cfg);
}

static void test_precedence(void)
{
    cfg_t c;
    st_config_t *cfg;
    char err[256] = "";
    clear_env();
    write_file(
        "# comment\nkafka.brokers = file:1\nredis.port=1111\nmodel.ratio=0.25\nlinger.ms=7\n");

    /* file only */
    char *a1[] = {"test", "-F", tmpfile_path, NULL};
    ST_EQ_INT(load(&c, &cfg, a1, err, sizeof err), ST_CONFIG_OK);
    ST_EQ_STR(c.brokers, "file:1");
    ST_EQ_INT(c.port, 1111);
    size_t n;
    const st_config_prop_t *props;
    check_one_prop(cfg, "linger.ms", "7");
    st_config_destroy(cfg);

    /* environment beats the file */
    setenv("STINT_REDIS_PORT", "2222", 1);
    setenv("STINT_RDKAFKA_LINGER_MS", "9", 1);
    ST_EQ_INT(load(&c, &cfg, a1, err, sizeof err), ST_CONFIG_OK);
    ST_EQ_INT(c.port, 2222);
    ST_EQ_STR(c.brokers, "file:1");
    props = st_config_kafka_props(cfg, &n);
    ST_CHECK(n == 1 && strcmp(props[0].value, "9") == 0);
    st_config_destroy(cfg);

    /* flags beat both, long and short forms, -X too */
    char *a2[] = {"test", "-F", tmpfile_path,   "--redis.port",
                  "3333", "-b", "flag:1",       "--model.ratio=0.75",
                  "-f",   "-X", "linger.ms=11", NULL};
    ST_EQ_INT(load(&c, &cfg, a2, err, sizeof err), ST_CONFIG_OK);
    ST_EQ_INT(c.port, 3333);
    ST_EQ_STR(c.brokers, "flag:1");
    ST_NEAR(c.ratio, 0.75, 0);
    ST_EQ_INT(c.follow, 1);
    props = st_config_kafka_props(cfg, &n);
    ST_CHECK(n == 1 && strcmp(props[0].value, "11") == 0);
    st_config_destroy(cfg);
    clear_env();
    unlink(tmpfile_path);
}

static void test_errors_name_key_and_value(void)
{
    static const struct {
        const char *flag, *value, *expect;
    } cases[] = {
        {"--redis.port", "70000", "redis.port: 70000 is out of range"},
        {"--redis.port", "12ab", "redis.port: \"12ab\" is not an integer"},
        {"--model.ratio", "1.5", "model.ratio: 1.5 is out of range"},
        {"--model.ratio", "nan", "model.ratio: \"nan\" is not a number"},
        {"--tail.follow=maybe", NULL, "tail.follow: \"maybe\" is not a boolean"},
        {"--no.such", "1", "unknown option --no.such"},
        {"-X", "no.such.property=1", "kafka property no.such.property=1"},
        {"-X", "novalue", "-X needs prop=value"},
    };
    clear_env();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cfg_t c;
        st_config_t *cfg;
        char err[256] = "";
        char *argv[] = {"test", (char *)cases[i].flag, (char *)cases[i].value, NULL};
        ST_EQ_INT(load(&c, &cfg, argv, err, sizeof err), ST_CONFIG_USAGE);
        if (!strstr(err, cases[i].expect))
            ST_FAIL_AT("error \"%s\" does not contain \"%s\"", err, cases[i].expect);
        st_config_destroy(cfg);
    }
    /* an environment error says where it came from */
    setenv("STINT_REDIS_PORT", "-5", 1);
    cfg_t c;
    st_config_t *cfg;
    char err[256] = "";
    char *argv[] = {"test", NULL};
    ST_EQ_INT(load(&c, &cfg, argv, err, sizeof err), ST_CONFIG_USAGE);
    ST_CHECK(strstr(err, "redis.port") && strstr(err, "env STINT_REDIS_PORT"));
    st_config_destroy(cfg);
    clear_env();
    /* a bad line in the -F file names file:line */
    write_file("redis.port=1\nthis line has no equals sign\n");
    char *a2[] = {"test", "-F", tmpfile_path, NULL};
    ST_EQ_INT(load(&c, &cfg, a2, err, sizeof err), ST_CONFIG_USAGE);
    ST_CHECK(strstr(err, ":2: expected key=value") != NULL);
    st_config_destroy(cfg);
    /* a line over the buffer is refused whole, without echoing its value (a key, a password) */
    char big[6000];
    memset(big, 'k', sizeof big);
    memcpy(big, "redis.password=", 15);
    big[sizeof big - 2] = '\n';
    big[sizeof big - 1] = '\0';
    write_file(big);
    ST_EQ_INT(load(&c, &cfg, a2, err, sizeof err), ST_CONFIG_USAGE);
    ST_CHECK(strstr(err, ":1: line longer than") != NULL);
    ST_CHECK(strstr(err, "kkkk") == NULL);
    st_config_destroy(cfg);
    unlink(tmpfile_path);
}

static void test_dump_redacts_secrets(void)
{
    cfg_t c;
    st_config_t *cfg;
    char err[256] = "";
    char *argv[] = {"test", "--redis.password", "hunter2", "-X", "sasl.password=s3cr3t",
                    /* a URL with basic-auth user information (a registry's) */
                    "--log.level", "https://me:pw0/rd@reg.example:8081/x", NULL};
    clear_env();
    ST_EQ_INT(load(&c, &cfg, argv, err, sizeof err), ST_CONFIG_OK);
    ST_EQ_STR(c.password, "hunter2");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    st_config_dump(cfg, f);
    fclose(f);
    ST_CHECK(strstr(buf, "hunter2") == NULL);
    ST_CHECK(strstr(buf, "s3cr3t") == NULL);
    ST_CHECK(strstr(buf, "redis.password=***") != NULL);
    ST_CHECK(strstr(buf, "pw0") == NULL); /* a '/' in the password too */
    ST_CHECK(strstr(buf, "log.level=https://***@reg.example:8081/x") != NULL);
    ST_CHECK(strstr(buf, "redis.port=16379  # default") != NULL);
    free(buf);
    st_config_destroy(cfg);
}

/* STINT_<KEY>_FILE and STINT_RDKAFKA_<PROP>_FILE: the file's bytes, one trailing newline off;
 * the value is redacted in the dump, which names the variable it came from. */
static void test_secret_files(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *expect;
    } cases[] = {
        {"hunter2\n", 8, "hunter2"},
        {"hunter2", 7, "hunter2"},
        {"hunter2\r\n", 9, "hunter2"},
        {"hunter2\n\n", 9, "hunter2\n"}, /* only one newline is the file's end */
        {" two words ", 11, " two words "},
    };
    char *argv[] = {"test", NULL};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cfg_t c;
        st_config_t *cfg;
        char err[256] = "";
        clear_env();
        const char *path = write_secret("redis", cases[i].bytes, cases[i].len);
        setenv("STINT_REDIS_PASSWORD_FILE", path, 1);
        ST_EQ_INT(load(&c, &cfg, argv, err, sizeof err), ST_CONFIG_OK);
        ST_EQ_STR(c.password, cases[i].expect);
        char *dump = dump_text(cfg);
        ST_CHECK(strstr(dump, "redis.password=***  # file STINT_REDIS_PASSWORD_FILE\n") != NULL);
        ST_CHECK(strstr(dump, "hunter2") == NULL);
        free(dump);
        st_config_destroy(cfg);
        unlink(path);
    }

    /* a librdkafka secret from a file; a flag still beats the environment */
    cfg_t c;
    st_config_t *cfg;
    char err[256] = "";
    clear_env();
    const char *path = write_secret("sasl", "s3cr3t\n", 7);
    setenv("STINT_RDKAFKA_SASL_PASSWORD_FILE", path, 1);
    setenv("STINT_REDIS_PASSWORD", "from-env", 1);
    char *a2[] = {"test", "--redis.password", "from-flag", NULL};
    ST_EQ_INT(load(&c, &cfg, a2, err, sizeof err), ST_CONFIG_OK);
    ST_EQ_STR(c.password, "from-flag");
    check_one_prop(cfg, "sasl.password", "s3cr3t");
    char *dump = dump_text(cfg);
    ST_CHECK(strstr(dump, "rdkafka.sasl.password=***  # librdkafka, file "
                          "STINT_RDKAFKA_SASL_PASSWORD_FILE\n") != NULL);
    ST_CHECK(strstr(dump, "redis.password=***  # flag --redis.password\n") != NULL);
    ST_CHECK(strstr(dump, "s3cr3t") == NULL && strstr(dump, "from-") == NULL);
    free(dump);
    st_config_destroy(cfg);
    unlink(path);

    /* _FILE is for secrets only: STINT_REDIS_PORT_FILE is not read */
    clear_env();
    setenv("STINT_REDIS_PORT_FILE", "/nonexistent", 1);
    ST_EQ_INT(load(&c, &cfg, argv, err, sizeof err), ST_CONFIG_OK);
    ST_EQ_INT(c.port, 16379);
    st_config_destroy(cfg);
    clear_env();
}

/* Each failure is one line that names the variable (and never holds the secret). */
static void test_secret_file_errors(void)
{
    static const struct {
        const char *var, *plain_var, *bytes;
        size_t len;
        const char *expect;
    } cases[] = {
        {"STINT_REDIS_PASSWORD_FILE", NULL, NULL, 0, "cannot read the file: No such file"},
        {"STINT_REDIS_PASSWORD_FILE", NULL, "", 0, "the file is empty"},
        {"STINT_REDIS_PASSWORD_FILE", NULL, "\n", 1, "the file is empty"},
        {"STINT_REDIS_PASSWORD_FILE", NULL, "a\0b", 3, "it contains a NUL byte"},
        {"STINT_REDIS_PASSWORD_FILE", "STINT_REDIS_PASSWORD", "hunter2", 7,
         "STINT_REDIS_PASSWORD and STINT_REDIS_PASSWORD_FILE are both set: set one of them"},
        {"STINT_RDKAFKA_SASL_PASSWORD_FILE", NULL, "", 0, "the file is empty"},
        {"STINT_RDKAFKA_SASL_PASSWORD_FILE", "STINT_RDKAFKA_SASL_PASSWORD", "hunter2", 7,
         "STINT_RDKAFKA_SASL_PASSWORD and STINT_RDKAFKA_SASL_PASSWORD_FILE are both set"},
    };
    char *argv[] = {"test", NULL};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cfg_t c;
        st_config_t *cfg;
        char err[256] = "", expect[256];
        clear_env();
        const char *path = cases[i].bytes ? write_secret("bad", cases[i].bytes, cases[i].len)
                                          : "/nonexistent/secret";
        setenv(cases[i].var, path, 1);
        if (cases[i].plain_var)
            setenv(cases[i].plain_var, "hunter2", 1);
        /* a file's failure names the variable and the file; "both set" names the two variables */
        snprintf(expect, sizeof expect, "%s=%s: %s", cases[i].var, path, cases[i].expect);
        if (cases[i].plain_var)
            snprintf(expect, sizeof expect, "%s", cases[i].expect);
        ST_EQ_INT(load(&c, &cfg, argv, err, sizeof err), ST_CONFIG_USAGE);
        if (!strstr(err, expect))
            ST_FAIL_AT("case %zu: error \"%s\" does not contain \"%s\"", i, err, expect);
        ST_CHECK(strchr(err, '\n') == NULL && strstr(err, "hunter2") == NULL);
        st_config_destroy(cfg);
        if (cases[i].bytes)
            unlink(path);
    }
    clear_env();
}

static void test_positional_and_verbosity(void)
{
    cfg_t c;
    st_config_t *cfg;
    char err[256] = "";
    char *argv[] = {"test", "predictions", "-v", "--", "-literal", NULL};
    memset(&c, 0, sizeof c);
    cfg = st_config_new("test", NULL);
    st_config_add_table(cfg, table, &c, err, sizeof err);
    int npos = 0;
    ST_EQ_INT(st_config_load(cfg, 5, argv, &npos, err, sizeof err), ST_CONFIG_OK);
    ST_EQ_INT(npos, 2);
    ST_EQ_STR(argv[1], "predictions");
    ST_EQ_STR(argv[2], "-literal");
    ST_EQ_STR(c.log_level, "debug");
    st_config_destroy(cfg);
    /* positional arguments where none are accepted are a usage error */
    char *a2[] = {"test", "stray", NULL};
    memset(&c, 0, sizeof c);
    cfg = st_config_new("test", NULL);
    st_config_add_table(cfg, table, &c, err, sizeof err);
    ST_EQ_INT(st_config_load(cfg, 2, a2, NULL, err, sizeof err), ST_CONFIG_USAGE);
    ST_CHECK(strstr(err, "unexpected argument \"stray\"") != NULL);
    st_config_destroy(cfg);
}

static void test_env_names(void)
{
    char buf[64];
    ST_EQ_STR(st_config_env_name("redis.port", buf, sizeof buf), "STINT_REDIS_PORT");
    ST_EQ_STR(st_config_env_name("batch.timeout_ms", buf, sizeof buf), "STINT_BATCH_TIMEOUT_MS");
    ST_EQ_STR(st_config_env_name("schema.registry-url", buf, sizeof buf),
              "STINT_SCHEMA_REGISTRY_URL");
}

int main(void)
{
    ST_RUN(test_defaults);
    ST_RUN(test_precedence);
    ST_RUN(test_errors_name_key_and_value);
    ST_RUN(test_dump_redacts_secrets);
    ST_RUN(test_secret_files);
    ST_RUN(test_secret_file_errors);
    ST_RUN(test_positional_and_verbosity);
    ST_RUN(test_env_names);
    return st_test_summary();
}
