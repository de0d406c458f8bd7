/* config_walk.c -- typed values out of a libconfig tree, with messages that
 * name the place (file:line or --set TEXT), the full key, what was expected
 * and what was found. See config_priv.h. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_priv.h"

const cfg_range cfg_positive = {0, INFINITY, 1, 1};
const cfg_range cfg_nonnegative = {0, INFINITY, 0, 1};
const cfg_range cfg_unit = {0, 1, 0, 0};
const cfg_range cfg_unit_open_hi = {0, 1, 0, 1};
const cfg_range cfg_unit_open_lo = {0, 1, 1, 0};

void cfg_ctx_free(cfg_ctx *c)
{
    free(c->src);
    free(c->src_name);
    c->src = c->src_name = NULL;
}

void cfg_where(const cfg_ctx *c, const config_setting_t *s, char *out, size_t n)
{
    const char *set = s ? (const char *)config_setting_get_hook(s) : NULL;
    const char *file = s ? config_setting_source_file(s) : NULL;
    if (set)
        snprintf(out, n, "--set %s", set);
    else if (s && config_setting_source_line(s) > 0)
        snprintf(out, n, "%s:%u", file ? file : c->path, config_setting_source_line(s));
    else
        snprintf(out, n, "%s", c->path);
}

fl_code cfg_fail(cfg_ctx *c, const config_setting_t *s, const char *key, const char *fmt, ...)
{
    char where[FL_PATH_MAX + 64], msg[FL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cfg_where(c, s, where, sizeof where);
    return fl_fail(c->err, FL_ECONFIG, "%s: %s: %s", where, key, msg);
}

fl_code cfg_missing(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, const char *hint)
{
    char where[FL_PATH_MAX + 64], key[CFG_KEY_MAX];
    cfg_where(c, g, where, sizeof where);
    cfg_key(key, gkey, name);
    return fl_fail(c->err, FL_ECONFIG, "%s: missing key %s%s%s", where, key, hint ? " HINT: " : "", hint ? hint : "");
}

void cfg_key(char *out, const char *gkey, const char *name)
{
    if (gkey && gkey[0])
        snprintf(out, CFG_KEY_MAX, "%s.%s", gkey, name);
    else
        snprintf(out, CFG_KEY_MAX, "%s", name);
}

void cfg_key_index(char *out, const char *gkey, int i)
{
    snprintf(out, CFG_KEY_MAX, "%s.[%d]", gkey, i);
}

const char *cfg_type_name(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a float";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_GROUP:
        return "a group";
    case CONFIG_TYPE_ARRAY:
        return "an array";
    case CONFIG_TYPE_LIST:
        return "a list";
    }
    return "nothing";
}

void cfg_join(char *out, size_t n, const char *const *names)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; names[i] && used < n; i++)
        used += (size_t)snprintf(out + used, n - used, "%s%s", i ? ", " : "", names[i]);
}

int cfg_in(const char *s, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

config_setting_t *cfg_member(const config_setting_t *g, const char *name)
{
    return g && config_setting_is_group(g) ? config_setting_get_member(g, name) : NULL;
}

fl_code cfg_members(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *const *allowed,
                    const char *owner)
{
    char key[CFG_KEY_MAX], list[512];
    for (int i = 0; g && i < config_setting_length(g); i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        if (cfg_in(config_setting_name(m), allowed) >= 0)
            continue;
        cfg_key(key, gkey, config_setting_name(m));
        cfg_join(list, sizeof list, allowed);
        return cfg_fail(c, m, key, "unknown key HINT: %s takes %s", owner, list);
    }
    return FL_OK;
}

fl_code cfg_group(cfg_ctx *c, const config_setting_t *s, const char *key)
{
    if (config_setting_is_group(s))
        return FL_OK;
    return cfg_fail(c, s, key, "expected a group { ... }, found %s", cfg_type_name(s));
}

/* Loads the text of file into c->src (once per file). */
static int load_source(cfg_ctx *c, const char *file)
{
    if (c->src && strcmp(c->src_name, file) == 0)
        return 1;
    cfg_ctx_free(c);
    FILE *f = fopen(file, "rb");
    if (!f)
        return 0;
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, 2 * cap + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return 0;
    buf[n] = '\0';
    c->src = buf;
    c->src_name = strdup(file);
    if (!c->src_name) {
        cfg_ctx_free(c);
        return 0;
    }
    return 1;
}

static int is_name_char(char ch)
{
    return isalnum((unsigned char)ch) || ch == '_' || ch == '-' || ch == '*';
}

/* libconfig 1.5 stores a plain integer literal beyond 32 bits as a wrapped
 * int (seed = 4294967295 reads as -1) instead of failing. This finds the
 * literal "name = digits" on the setting's line and reads it at 64 bits;
 * returns 0 when it cannot be found. */
static int reread_int(cfg_ctx *c, const config_setting_t *s, long long *v)
{
    const char *file = config_setting_source_file(s), *name = config_setting_name(s);
    unsigned line = config_setting_source_line(s);
    if (!file || !name || line == 0 || config_setting_get_hook(s) || !load_source(c, file))
        return 0;
    const char *p = c->src;
    for (unsigned l = 1; l < line && p; l++) {
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    if (!p)
        return 0;
    const char *end = strchr(p, '\n');
    if (!end)
        end = p + strlen(p);
    size_t len = strlen(name);
    for (const char *q = p; q + len <= end; q++) {
        if (strncmp(q, name, len) != 0 || (q > p && is_name_char(q[-1])) || is_name_char(q[len]))
            continue;
        const char *r = q + len;
        while (r < end && isspace((unsigned char)*r))
            r++;
        if (r == end || (*r != '=' && *r != ':'))
            continue;
        for (r++; r < end && isspace((unsigned char)*r);)
            r++;
        const char *digits = r + (*r == '-' || *r == '+');
        int hex = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
        char *stop;
        errno = 0;
        long long x = strtoll(r, &stop, hex ? 16 : 10);
        if (stop == r || errno || *stop == '.' || *stop == 'e' || *stop == 'E')
            return 0;
        *v = x;
        return 1;
    }
    return 0;
}

fl_code cfg_int(cfg_ctx *c, const config_setting_t *s, const char *key, long long lo, long long hi, long long *out)
{
    long long v;
    if (config_setting_type(s) == CONFIG_TYPE_INT64) {
        v = config_setting_get_int64(s);
    } else if (config_setting_type(s) == CONFIG_TYPE_INT) {
        long long lit;
        v = config_setting_get_int(s);
        if (reread_int(c, s, &lit) && (lit > INT_MAX || lit < INT_MIN))
            v = lit;
    } else {
        return cfg_fail(c, s, key, "expected an integer, found %s", cfg_type_name(s));
    }
    if (v < lo || v > hi) {
        /* hi == INT_MAX: no bound of its own, only what an int holds */
        if (hi == INT_MAX && v < lo)
            return cfg_fail(c, s, key, "must be >= %lld, found %lld", lo, v);
        if (hi == INT_MAX)
            return cfg_fail(c, s, key, "must be <= %d, found %lld", INT_MAX, v);
        return cfg_fail(c, s, key, "must be in %lld..%lld, found %lld", lo, hi, v);
    }
    *out = v;
    return FL_OK;
}

fl_code cfg_float(cfg_ctx *c, const config_setting_t *s, const char *key, cfg_range r, double *out)
{
    double v;
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
        v = config_setting_get_int(s);
        break;
    case CONFIG_TYPE_INT64:
        v = (double)config_setting_get_int64(s);
        break;
    case CONFIG_TYPE_FLOAT:
        v = config_setting_get_float(s);
        break;
    default:
        return cfg_fail(c, s, key, "expected a number, found %s", cfg_type_name(s));
    }
    if (!isfinite(v))
        return cfg_fail(c, s, key, "expected a finite number, found %g", v);
    int low_ok = r.lo_open ? v > r.lo : v >= r.lo;
    int high_ok = r.hi_open ? v < r.hi : v <= r.hi;
    if (!low_ok || !high_ok) {
        if (isinf(r.hi))
            return cfg_fail(c, s, key, "must be %s %g, found %g", r.lo_open ? ">" : ">=", r.lo, v);
        return cfg_fail(c, s, key, "must be in %c%g, %g%c, found %g", r.lo_open ? '(' : '[', r.lo, r.hi,
                        r.hi_open ? ')' : ']', v);
    }
    *out = v;
    return FL_OK;
}

fl_code cfg_bool(cfg_ctx *c, const config_setting_t *s, const char *key, int *out)
{
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return cfg_fail(c, s, key, "expected true or false, found %s", cfg_type_name(s));
    *out = config_setting_get_bool(s) ? 1 : 0;
    return FL_OK;
}

fl_code cfg_string(cfg_ctx *c, const config_setting_t *s, const char *key, char *out, size_t cap)
{
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return cfg_fail(c, s, key, "expected a string, found %s HINT: strings are written in double quotes",
                        cfg_type_name(s));
    const char *v = config_setting_get_string(s);
    size_t n = strlen(v);
    if (n == 0)
        return cfg_fail(c, s, key, "must not be empty");
    if (n >= cap)
        return cfg_fail(c, s, key, "is %zu characters long, at most %zu are allowed", n, cap - 1);
    memcpy(out, v, n + 1);
    return FL_OK;
}

fl_code cfg_enum(cfg_ctx *c, const config_setting_t *s, const char *key, const char *const *allowed, char *out,
                 size_t cap, int *idx)
{
    char list[256];
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return cfg_fail(c, s, key, "expected a string, found %s HINT: strings are written in double quotes",
                        cfg_type_name(s));
    const char *v = config_setting_get_string(s);
    int i = cfg_in(v, allowed);
    if (i < 0) {
        cfg_join(list, sizeof list, allowed);
        return cfg_fail(c, s, key, "unknown value \"%s\" HINT: use one of %s", v, list);
    }
    if (out)
        snprintf(out, cap, "%s", v);
    if (idx)
        *idx = i;
    return FL_OK;
}

fl_code cfg_name(cfg_ctx *c, const config_setting_t *s, const char *key, char *out, size_t cap)
{
    fl_code rc = cfg_string(c, s, key, out, cap);
    if (rc)
        return rc;
    int ok = strcmp(out, ".") != 0 && strcmp(out, "..") != 0;
    for (const char *p = out; *p && ok; p++)
        ok = isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.';
    if (!ok)
        return cfg_fail(c, s, key,
                        "\"%s\" is not a valid name HINT: it names a folder: use letters, digits, '_', "
                        "'-' and '.', e.g. \"cnn_a\"",
                        out);
    return FL_OK;
}

fl_code cfg_values(cfg_ctx *c, const config_setting_t *s, const char *key, int min_n, int max_n, int *n)
{
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return cfg_fail(c, s, key, "expected an array [ ... ], found %s", cfg_type_name(s));
    *n = config_setting_length(s);
    if (*n < min_n)
        return cfg_fail(c, s, key, "expected at least %d value%s, found %d", min_n, min_n == 1 ? "" : "s", *n);
    if (*n > max_n)
        return cfg_fail(c, s, key, "expected at most %d values, found %d", max_n, *n);
    return FL_OK;
}

fl_code cfg_opt_int(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, long long lo,
                    long long hi, int *out)
{
    const config_setting_t *s = cfg_member(g, name);
    char key[CFG_KEY_MAX];
    long long v = 0;
    if (!s)
        return FL_OK;
    cfg_key(key, gkey, name);
    fl_code rc = cfg_int(c, s, key, lo, hi, &v);
    if (!rc)
        *out = (int)v;
    return rc;
}

fl_code cfg_opt_float(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, cfg_range r,
                      double *out)
{
    const config_setting_t *s = cfg_member(g, name);
    char key[CFG_KEY_MAX];
    if (!s)
        return FL_OK;
    cfg_key(key, gkey, name);
    return cfg_float(c, s, key, r, out);
}

fl_code cfg_opt_bool(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, int *out)
{
    const config_setting_t *s = cfg_member(g, name);
    char key[CFG_KEY_MAX];
    if (!s)
        return FL_OK;
    cfg_key(key, gkey, name);
    return cfg_bool(c, s, key, out);
}

fl_code cfg_opt_string(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, char *out, size_t cap)
{
    const config_setting_t *s = cfg_member(g, name);
    char key[CFG_KEY_MAX];
    if (!s)
        return FL_OK;
    cfg_key(key, gkey, name);
    return cfg_string(c, s, key, out, cap);
}

fl_code cfg_opt_enum(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name,
                     const char *const *allowed, char *out, size_t cap)
{
    const config_setting_t *s = cfg_member(g, name);
    char key[CFG_KEY_MAX];
    if (!s)
        return FL_OK;
    cfg_key(key, gkey, name);
    return cfg_enum(c, s, key, allowed, out, cap, NULL);
}
