/* st_config.c - the table-driven configuration: defaults < -F file < environment < flags. */
#include "st_config.h"

#include "st_err.h"
#include "st_log.h"

#include <ctype.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char **environ;

#define RDKAFKA_ENV_PREFIX "STINT_RDKAFKA_"

typedef struct {
    const st_config_entry_t *e;
    void *base;
    char source[160];
} slot_t;

struct st_config_s {
    char *program;
    char *summary;
    char *positional;
    slot_t *slots;
    size_t nslots;
    st_config_prop_t *props;
    char **prop_sources; /* where each prop came from, for --dump-config */
    size_t nprops;
};

st_config_t *st_config_new(const char *program, const char *summary)
{
    st_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        st_oom_abort("st_config_new");
    cfg->program = strdup(program ? program : "stint");
    cfg->summary = strdup(summary ? summary : "");
    return cfg;
}

static char **str_field(const slot_t *s)
{
    return (char **)((char *)s->base + s->e->offset);
}

void st_config_destroy(st_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nslots; i++) {
        if (cfg->slots[i].e->type == ST_CFG_STRING) {
            free(*str_field(&cfg->slots[i]));
            *str_field(&cfg->slots[i]) = NULL;
        }
    }
    for (size_t i = 0; i < cfg->nprops; i++) {
        free(cfg->props[i].name);
        free(cfg->props[i].value);
        free(cfg->prop_sources[i]);
    }
    free(cfg->props);
    free(cfg->prop_sources);
    free(cfg->slots);
    free(cfg->program);
    free(cfg->summary);
    free(cfg->positional);
    free(cfg);
}

const char *st_config_env_name(const char *key, char *buf, size_t size)
{
    size_t o = (size_t)snprintf(buf, size, "STINT_");
    for (const char *p = key; *p && o + 1 < size; p++)
        buf[o++] = (*p == '.' || *p == '-') ? '_' : (char)toupper((unsigned char)*p);
    buf[o < size ? o : size - 1] = '\0';
    return buf;
}

static slot_t *find_slot(st_config_t *cfg, const char *key, size_t keylen)
{
    for (size_t i = 0; i < cfg->nslots; i++) {
        const char *k = cfg->slots[i].e->key;
        if (strlen(k) == keylen && strncmp(k, key, keylen) == 0)
            return &cfg->slots[i];
    }
    return NULL;
}

static const char *type_name(st_cfg_type_t t)
{
    switch (t) {
    case ST_CFG_STRING:
        return "string";
    case ST_CFG_INT:
        return "integer";
    case ST_CFG_DOUBLE:
        return "number";
    case ST_CFG_BOOL:
        return "boolean";
    }
    return "?";
}

static int parse_bool(const char *v, bool *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int set_slot(slot_t *s, const char *value, const char *source, char *errstr, size_t size)
{
    const st_config_entry_t *e = s->e;
    void *field = (char *)s->base + e->offset;
    char *end;

    switch (e->type) {
    case ST_CFG_STRING: {
        char *copy = value ? strdup(value) : NULL;
        free(*(char **)field);
        *(char **)field = copy;
        break;
    }
    case ST_CFG_INT: {
        errno = 0;
        long long v = value ? strtoll(value, &end, 10) : 0;
        if (!value || !*value || *end || errno)
            return st_errstr(errstr, size, "%s: \"%s\" is not an integer (from %s)", e->key,
                             value ? value : "", source);
        if (e->min <= e->max && ((double)v < e->min || (double)v > e->max))
            return st_errstr(errstr, size, "%s: %lld is out of range [%.0f, %.0f] (from %s)",
                             e->key, v, e->min, e->max, source);
        *(int64_t *)field = v;
        break;
    }
    case ST_CFG_DOUBLE: {
        errno = 0;
        double v = value ? strtod(value, &end) : 0;
        if (!value || !*value || *end || errno || !isfinite(v))
            return st_errstr(errstr, size, "%s: \"%s\" is not a number (from %s)", e->key,
                             value ? value : "", source);
        if (e->min <= e->max && (v < e->min || v > e->max))
            return st_errstr(errstr, size, "%s: %g is out of range [%g, %g] (from %s)", e->key, v,
                             e->min, e->max, source);
        *(double *)field = v;
        break;
    }
    case ST_CFG_BOOL: {
        bool v;
        if (!value || parse_bool(value, &v) != 0)
            return st_errstr(errstr, size, "%s: \"%s\" is not a boolean (true/false) (from %s)",
                             e->key, value ? value : "", source);
        *(bool *)field = v;
        break;
    }
    }
    snprintf(s->source, sizeof s->source, "%s", source);
    return 0;
}

int st_config_add_table(st_config_t *cfg, const st_config_entry_t *table, void *base, char *errstr,
                        size_t errstr_size)
{
    size_t n = 0;
    while (table[n].key)
        n++;
    slot_t *slots = realloc(cfg->slots, (cfg->nslots + n) * sizeof *slots);
    if (!slots)
        st_oom_abort("config slots");
    cfg->slots = slots;
    for (size_t i = 0; i < n; i++) {
        slot_t *s = &cfg->slots[cfg->nslots++];
        memset(s, 0, sizeof *s);
        s->e = &table[i];
        s->base = base;
        if (table[i].type == ST_CFG_STRING)
            *str_field(s) = NULL;
        if (table[i].default_value || table[i].type == ST_CFG_STRING) {
            if (set_slot(s, table[i].default_value, "default", errstr, errstr_size) != 0)
                return -1;
        }
        snprintf(s->source, sizeof s->source, "default");
    }
    return 0;
}

void st_config_set_positional(st_config_t *cfg, const char *usage)
{
    free(cfg->positional);
    cfg->positional = usage ? strdup(usage) : NULL;
}

/* librdkafka properties whose values are redacted and may come from a *_FILE variable. */
static bool secret_prop(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") || strstr(name, "sasl.jaas") ||
           strstr(name, "token") || strstr(name, ".key.pem");
}

static int add_prop(st_config_t *cfg, const char *name, size_t namelen, const char *value,
                    const char *source, char *errstr, size_t size)
{
    char errbuf[256];
    char *n = strndup(name, namelen);
    /* Validate against librdkafka now, so a typo fails before anything connects. */
    rd_kafka_conf_t *probe = rd_kafka_conf_new();
    rd_kafka_conf_res_t res = rd_kafka_conf_set(probe, n, value, errbuf, sizeof errbuf);
    rd_kafka_conf_destroy(probe);
    if (res != RD_KAFKA_CONF_OK) {
        st_errstr(errstr, size, "kafka property %s=%s (from %s): %s", n,
                  secret_prop(n) ? "***" : value, source, errbuf);
        free(n);
        return -1;
    }
    for (size_t i = 0; i < cfg->nprops; i++) {
        if (strcmp(cfg->props[i].name, n) == 0) {
            free(n);
            free(cfg->props[i].value);
            cfg->props[i].value = strdup(value);
            free(cfg->prop_sources[i]);
            cfg->prop_sources[i] = strdup(source);
            return 0;
        }
    }
    st_config_prop_t *p = realloc(cfg->props, (cfg->nprops + 1) * sizeof *p);
    if (!p)
        st_oom_abort("config properties");
    cfg->props = p;
    char **ps = realloc(cfg->prop_sources, (cfg->nprops + 1) * sizeof *ps);
    if (!ps)
        st_oom_abort("config properties");
    cfg->prop_sources = ps;
    cfg->props[cfg->nprops].name = n;
    cfg->props[cfg->nprops].value = strdup(value);
    cfg->prop_sources[cfg->nprops] = strdup(source);
    cfg->nprops++;
    return 0;
}

int st_config_set(st_config_t *cfg, const char *key, const char *value, const char *source,
                  char *errstr, size_t errstr_size)
{
    slot_t *s = find_slot(cfg, key, strlen(key));
    if (!s)
        return st_errstr(errstr, errstr_size, "unknown setting \"%s\" (from %s)", key, source);
    return set_slot(s, value, source, errstr, errstr_size);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

/* The -F file: `key=value` lines, '#' comments. stint keys set settings; any other key is a
 * librdkafka property (as in kcat's -F), with an optional "rdkafka." prefix. */
static int load_file(st_config_t *cfg, const char *path, char *errstr, size_t size)
{
    FILE *f = fopen(path, "r");
    char line[4096], source[200];
    int lineno = 0;
    if (!f)
        return st_errstr(errstr, size, "-F %s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
            /* Not cut in two (a truncated value, the rest read as a line of its own), and not
             * echoed: it may be a key or a password. */
            fclose(f);
            return st_errstr(errstr, size, "-F %s:%d: line longer than %zu bytes", path, lineno,
                             sizeof line - 2);
        }
        char *l = trim(line);
        if (!*l || *l == '#')
            continue;
        char *eq = strchr(l, '=');
        snprintf(source, sizeof source, "%s:%d", path, lineno);
        if (!eq) {
            fclose(f);
            return st_errstr(errstr, size, "%s: expected key=value, got \"%s\"", source, l);
        }
        *eq = '\0';
        char *k = trim(l), *v = trim(eq + 1);
        slot_t *s = find_slot(cfg, k, strlen(k));
        int rc;
        if (s)
            rc = set_slot(s, v, source, errstr, size);
        else {
            if (strncmp(k, "rdkafka.", 8) == 0)
                k += 8;
            rc = add_prop(cfg, k, strlen(k), v, source, errstr, size);
        }
        if (rc != 0) {
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

#define SECRET_FILE_MAX (64 * 1024)

/* The value of a secret from the file named by variable var (the Docker and Kubernetes secrets
 * convention, e.g. STINT_REDIS_PASSWORD_FILE=/run/secrets/redis_password): the whole file, one
 * trailing newline removed. Returns a string the caller frees, or NULL with errstr naming var. */
static char *read_secret_file(const char *var, const char *path, char *errstr, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        st_errstr(errstr, size, "%s=%s: cannot read the file: %s", var, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(SECRET_FILE_MAX + 1);
    if (!buf)
        st_oom_abort("secret file");
    size_t n = fread(buf, 1, SECRET_FILE_MAX + 1, f);
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    const char *why = read_errno             ? strerror(read_errno)
                      : n > SECRET_FILE_MAX  ? "larger than 64 KiB"
                      : memchr(buf, '\0', n) ? "it contains a NUL byte"
                                             : NULL;
    if (!why) {
        if (n > 0 && buf[n - 1] == '\n')
            n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
        buf[n] = '\0';
        if (n == 0)
            why = "the file is empty";
    }
    if (why) {
        st_errstr(errstr, size, "%s=%s: %s", var, path, why);
        free(buf);
        return NULL;
    }
    return buf;
}

/* A secret set by var or read from the file named by var_FILE, not both. *value is what to use
 * (NULL: neither is set); *owned is it when it was read from a file (the caller frees it). */
static int secret_env(const char *var, const char *var_value, const char **value, char **owned,
                      char *source, size_t source_size, char *errstr, size_t size)
{
    char file_var[300];
    snprintf(file_var, sizeof file_var, "%s_FILE", var);
    const char *path = getenv(file_var);
    *owned = NULL;
    *value = var_value;
    snprintf(source, source_size, "env %s", var);
    if (!path)
        return 0;
    if (var_value)
        return st_errstr(errstr, size, "%s and %s are both set: set one of them", var, file_var);
    if (!(*owned = read_secret_file(file_var, path, errstr, size)))
        return -1;
    *value = *owned;
    snprintf(source, source_size, "file %s", file_var);
    return 0;
}

static int load_env(st_config_t *cfg, char *errstr, size_t size)
{
    char name[256], source[320];
    for (size_t i = 0; i < cfg->nslots; i++) {
        slot_t *s = &cfg->slots[i];
        const char *v = getenv(st_config_env_name(s->e->key, name, sizeof name));
        char *owned = NULL;
        if (s->e->secret &&
            secret_env(name, v, &v, &owned, source, sizeof source, errstr, size) != 0)
            return -1;
        if (!v)
            continue;
        if (!s->e->secret)
            snprintf(source, sizeof source, "env %s", name);
        int rc = set_slot(s, v, source, errstr, size);
        free(owned);
        if (rc != 0)
            return -1;
    }
    /* STINT_RDKAFKA_SASL_MECHANISMS=PLAIN -> sasl.mechanisms=PLAIN; a secret property may come
     * from a file instead: STINT_RDKAFKA_SASL_PASSWORD_FILE=/run/secrets/kafka_password. */
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, RDKAFKA_ENV_PREFIX, strlen(RDKAFKA_ENV_PREFIX)) != 0)
            continue;
        const char *p = *e + strlen(RDKAFKA_ENV_PREFIX), *eq = strchr(p, '=');
        if (!eq)
            continue;
        char prop[256];
        size_t n = (size_t)(eq - p) < sizeof prop - 1 ? (size_t)(eq - p) : sizeof prop - 1;
        for (size_t j = 0; j < n; j++)
            prop[j] = p[j] == '_' ? '.' : (char)tolower((unsigned char)p[j]);
        prop[n] = '\0';
        snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
        const char *value = eq + 1;
        char *owned = NULL;
        size_t namelen = strlen(name);
        if (namelen > 5 && strcmp(name + namelen - 5, "_FILE") == 0 && n > 5 && secret_prop(prop)) {
            n -= 5; /* sasl.password.file -> sasl.password */
            prop[n] = '\0';
            name[namelen - 5] = '\0';
            if (getenv(name)) /* handled (and refused) with the plain variable */
                continue;
            if (secret_env(name, NULL, &value, &owned, source, sizeof source, errstr, size) != 0)
                return -1;
        } else if (secret_prop(prop)) {
            if (secret_env(name, value, &value, &owned, source, sizeof source, errstr, size) != 0)
                return -1;
        } else {
            snprintf(source, sizeof source, "env %s", name);
        }
        int rc = add_prop(cfg, prop, n, value, source, errstr, size);
        free(owned);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static slot_t *find_short(st_config_t *cfg, char c)
{
    for (size_t i = 0; i < cfg->nslots; i++)
        if (cfg->slots[i].e->short_flag == c)
            return &cfg->slots[i];
    return NULL;
}

st_config_result_t st_config_load(st_config_t *cfg, int argc, char **argv, int *npositional,
                                  char *errstr, size_t errstr_size)
{
    bool dump = false;
    int npos = 0;

    /* Pass 1: help and the -F file, which ranks below the environment and flags. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            st_config_usage(cfg, stdout);
            return ST_CONFIG_EXIT;
        }
        if (strcmp(argv[i], "-F") == 0) {
            if (i + 1 >= argc) {
                st_errstr(errstr, errstr_size, "-F needs a file");
                return ST_CONFIG_USAGE;
            }
            if (load_file(cfg, argv[++i], errstr, errstr_size) != 0)
                return ST_CONFIG_USAGE;
        }
    }
    if (load_env(cfg, errstr, errstr_size) != 0)
        return ST_CONFIG_USAGE;

    /* Pass 2: flags. */
    char **positional = calloc((size_t)argc + 1, sizeof *positional);
    if (!positional)
        st_oom_abort("command-line arguments");
    bool flags_done = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (flags_done || a[0] != '-' || a[1] == '\0') {
            positional[npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (strcmp(a, "-F") == 0) {
            i++;
            continue;
        }
        if (strcmp(a, "--dump-config") == 0) {
            dump = true;
            continue;
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "-q") == 0) {
            slot_t *s = find_slot(cfg, "log.level", 9);
            if (s && set_slot(s, a[1] == 'v' ? "debug" : "warn", "flag", errstr, errstr_size) != 0)
                goto usage;
            continue;
        }
        if (strcmp(a, "-X") == 0 || strncmp(a, "-X", 2) == 0) {
            const char *kv = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            const char *eq = kv ? strchr(kv, '=') : NULL;
            if (!eq) {
                st_errstr(errstr, errstr_size, "-X needs prop=value, got \"%s\"", kv ? kv : "");
                goto usage;
            }
            if (add_prop(cfg, kv, (size_t)(eq - kv), eq + 1, "flag -X", errstr, errstr_size) != 0)
                goto usage;
            continue;
        }
        slot_t *s = NULL;
        const char *value = NULL;
        char source[200];
        if (a[1] == '-') {
            const char *name = a + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            s = find_slot(cfg, name, len);
            if (!s) {
                st_errstr(errstr, errstr_size, "unknown option --%.*s", (int)len, name);
                goto usage;
            }
            if (eq)
                value = eq + 1;
            else if (s->e->type == ST_CFG_BOOL)
                value = "true";
            snprintf(source, sizeof source, "flag --%s", s->e->key);
        } else if (a[2] == '\0') {
            s = find_short(cfg, a[1]);
            if (!s) {
                st_errstr(errstr, errstr_size, "unknown option %s", a);
                goto usage;
            }
            if (s->e->type == ST_CFG_BOOL)
                value = "true";
            snprintf(source, sizeof source, "flag -%c", a[1]);
        } else {
            st_errstr(errstr, errstr_size, "unknown option %s", a);
            goto usage;
        }
        if (!value) {
            if (i + 1 >= argc) {
                st_errstr(errstr, errstr_size, "%s needs a value", a);
                goto usage;
            }
            value = argv[++i];
        }
        if (set_slot(s, value, source, errstr, errstr_size) != 0)
            goto usage;
    }
    if (npos > 0 && !npositional) {
        st_errstr(errstr, errstr_size, "unexpected argument \"%s\"", positional[0]);
        goto usage;
    }
    for (int i = 0; i < npos; i++)
        argv[i + 1] = positional[i];
    if (npositional)
        *npositional = npos;
    free(positional);
    if (dump) {
        st_config_dump(cfg, stdout);
        return ST_CONFIG_EXIT;
    }
    return ST_CONFIG_OK;

usage:
    free(positional);
    return ST_CONFIG_USAGE;
}

void st_config_usage(const st_config_t *cfg, FILE *out)
{
    char env[256];
    fprintf(out, "usage: %s [options]%s%s\n", cfg->program, cfg->positional ? " " : "",
            cfg->positional ? cfg->positional : "");
    if (*cfg->summary)
        fprintf(out, "%s\n", cfg->summary);
    fprintf(out, "\noptions (flag / environment, default):\n");
    for (size_t i = 0; i < cfg->nslots; i++) {
        const st_config_entry_t *e = cfg->slots[i].e;
        char flag[64];
        if (e->short_flag)
            snprintf(flag, sizeof flag, "-%c, --%s", e->short_flag, e->key);
        else
            snprintf(flag, sizeof flag, "    --%s", e->key);
        fprintf(out, "  %-32s %s\n", flag, e->help ? e->help : "");
        fprintf(out, "  %-32s %s, %s, default %s\n", "",
                st_config_env_name(e->key, env, sizeof env), type_name(e->type),
                e->secret ? "(secret)" : (e->default_value ? e->default_value : "unset"));
    }
    fprintf(
        out,
        "\n  -F FILE                          read key=value settings (non-stint keys go to "
        "librdkafka)\n"
        "  -X PROP=VALUE                    set a librdkafka property (also STINT_RDKAFKA_<PROP>)\n"
        "  <VAR>_FILE=PATH                  a secret's value read from a file (one trailing "
        "newline\n"
        "                                   off), e.g. STINT_REDIS_PASSWORD_FILE or\n"
        "                                   STINT_RDKAFKA_SASL_PASSWORD_FILE\n"
        "  -v / -q                          debug / warnings-only logging\n"
        "  --dump-config                    print the effective configuration and exit\n"
        "  -h, --help                       this text\n");
}

void st_config_dump(const st_config_t *cfg, FILE *out)
{
    for (size_t i = 0; i < cfg->nslots; i++) {
        const slot_t *s = &cfg->slots[i];
        const void *field = (const char *)s->base + s->e->offset;
        fprintf(out, "%s=", s->e->key);
        switch (s->e->type) {
        case ST_CFG_STRING: {
            const char *v = *(char *const *)field;
            char url[1024];
            /* a URL's user:password@ (a registry's basic auth) is a secret too */
            if (v && !s->e->secret && strstr(v, "://"))
                v = st_log_url_redacted(v, url, sizeof url);
            fputs(!v ? "" : (s->e->secret && *v ? "***" : v), out);
            break;
        }
        case ST_CFG_INT:
            fprintf(out, "%lld", (long long)*(const int64_t *)field);
            break;
        case ST_CFG_DOUBLE:
            fprintf(out, "%g", *(const double *)field);
            break;
        case ST_CFG_BOOL:
            fputs(*(const bool *)field ? "true" : "false", out);
            break;
        }
        fprintf(out, "  # %s\n", s->source);
    }
    for (size_t i = 0; i < cfg->nprops; i++)
        fprintf(out, "rdkafka.%s=%s  # librdkafka, %s\n", cfg->props[i].name,
                secret_prop(cfg->props[i].name) ? "***" : cfg->props[i].value,
                cfg->prop_sources[i]);
}

const st_config_prop_t *st_config_kafka_props(const st_config_t *cfg, size_t *n)
{
    *n = cfg->nprops;
    return cfg->props;
}
