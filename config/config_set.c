/* config_set.c -- `--set key.path=value` overrides, applied to the libconfig
 * tree before it is checked, so an override is checked like the file.
 *
 * Path components are separated by '.'; a component of digits ("0" or "[0]")
 * is a list index, any other component inside a list picks the element whose
 * `name` is that component (models.cnn_a; a name with dots works too).
 * Missing groups on the way are created. The value is read as libconfig reads
 * a value; what libconfig cannot read is a bare string (resnet50, data/x.h5).
 * Every setting an override creates carries the override's text as its hook,
 * so later messages say "--set TEXT" instead of a line of the file. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_priv.h"

#define SET_MAX_PARTS 32

/* "12" or "[12]" -> 12; returns 0 for anything else. */
static int parse_index(const char *s, int *idx)
{
    int bracket = s[0] == '[';
    const char *p = s + bracket;
    char *end;
    if (!isdigit((unsigned char)*p))
        return 0;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (bracket && *end++ != ']')
        return 0;
    if (*end || errno || v > INT_MAX)
        return 0;
    *idx = (int)v;
    return 1;
}

/* A whole integer literal ([+-]digits or 0x hex, optional L or LL)? */
static int int_literal(const char *s, long long *v, int *wide)
{
    const char *p = s + (*s == '+' || *s == '-');
    int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    const char *digits = p + (hex ? 2 : 0);
    const char *q = digits;
    while (hex ? isxdigit((unsigned char)*q) : isdigit((unsigned char)*q))
        q++;
    if (q == digits || (strcmp(q, "") != 0 && strcmp(q, "L") != 0 && strcmp(q, "LL") != 0))
        return 0;
    errno = 0;
    *v = strtoll(s, NULL, hex ? 16 : 10);
    if (errno)
        return -1;
    *wide = *q == 'L' || *v > INT_MAX || *v < INT_MIN;
    return 1;
}

/* Reads value into the setting "v" at the root of vc (initialised by the caller). */
static fl_code parse_value(cfg_ctx *c, const char *text, const char *value, config_t *vc, config_setting_t **out)
{
    config_setting_t *root = config_root_setting(vc);
    long long iv;
    int wide, lit = int_literal(value, &iv, &wide);
    if (lit < 0)
        return fl_fail(c->err, FL_EUSAGE, "--set %s: %s does not fit a 64-bit integer", text, value);
    if (lit > 0) {
        *out = config_setting_add(root, "v", wide ? CONFIG_TYPE_INT64 : CONFIG_TYPE_INT);
        if (*out && (wide ? config_setting_set_int64(*out, iv) : config_setting_set_int(*out, (int)iv)))
            return FL_OK;
        return fl_fail(c->err, FL_ENOMEM, "--set %s: out of memory", text);
    }
    size_t n = strlen(value);
    char *doc = malloc(n + 8);
    if (!doc)
        return fl_fail(c->err, FL_ENOMEM, "--set %s: out of memory", text);
    snprintf(doc, n + 8, "v = %s;\n", value);
    int ok = config_read_string(vc, doc);
    free(doc);
    root = config_root_setting(vc);
    if (ok && config_setting_length(root) == 1 && (*out = config_setting_get_member(root, "v")))
        return FL_OK;
    if (value[0] && strchr("\"[({", value[0]))
        return fl_fail(c->err, FL_EUSAGE,
                       "--set %s: the value is not valid libconfig (%s) HINT: e.g. "
                       "--set 'models.0.tta=[\"hflip\"]'",
                       text, ok ? "more than one value" : config_error_text(vc));
    /* A bare word: the string as written. */
    config_destroy(vc);
    config_init(vc);
    *out = config_setting_add(config_root_setting(vc), "v", CONFIG_TYPE_STRING);
    if (*out && config_setting_set_string(*out, value))
        return FL_OK;
    return fl_fail(c->err, FL_ENOMEM, "--set %s: out of memory", text);
}

/* Copies src under parent as name (NULL inside lists and arrays), marked as
 * coming from override text. */
static config_setting_t *copy_setting(config_setting_t *parent, const char *name, const config_setting_t *src,
                                      const char *text)
{
    config_setting_t *d = config_setting_add(parent, name, config_setting_type(src));
    if (!d)
        return NULL;
    config_setting_set_hook(d, (void *)text);
    switch (config_setting_type(src)) {
    case CONFIG_TYPE_INT:
        config_setting_set_int(d, config_setting_get_int(src));
        break;
    case CONFIG_TYPE_INT64:
        config_setting_set_int64(d, config_setting_get_int64(src));
        break;
    case CONFIG_TYPE_FLOAT:
        config_setting_set_float(d, config_setting_get_float(src));
        break;
    case CONFIG_TYPE_BOOL:
        config_setting_set_bool(d, config_setting_get_bool(src));
        break;
    case CONFIG_TYPE_STRING:
        config_setting_set_string(d, config_setting_get_string(src));
        break;
    default:
        for (int i = 0; i < config_setting_length(src); i++) {
            const config_setting_t *e = config_setting_get_elem(src, (unsigned)i);
            if (!copy_setting(d, config_setting_name(e), e, text))
                return NULL;
        }
    }
    return d;
}

/* The `name` string of list element i, or NULL. */
static const char *element_name(const config_setting_t *l, int i)
{
    const config_setting_t *name = cfg_member(config_setting_get_elem(l, (unsigned)i), "name");
    return name && config_setting_type(name) == CONFIG_TYPE_STRING ? config_setting_get_string(name) : NULL;
}

/* The element of list l whose member `name` is the string `want`, or -1. */
static int element_named(const config_setting_t *l, const char *want)
{
    for (int i = 0; i < config_setting_length(l); i++) {
        const char *name = element_name(l, i);
        if (name && strcmp(name, want) == 0)
            return i;
    }
    return -1;
}

static fl_code no_such_element(cfg_ctx *c, const char *text, const config_setting_t *l, const char *key,
                               const char *want)
{
    char names[512] = "";
    size_t used = 0;
    for (int i = 0; i < config_setting_length(l) && used < sizeof names; i++) {
        const char *name = element_name(l, i);
        if (name)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", name);
    }
    return fl_fail(c->err, FL_EUSAGE, "--set %s: %s has no element named \"%s\" HINT: %s%s%suse an index, e.g. %s.0",
                   text, key, want, names[0] ? "the names are " : "", names, names[0] ? "; or " : "", key);
}

/* Puts scalar v in place of element e of an array or list. */
static fl_code replace_element(cfg_ctx *c, const char *text, const char *key, config_setting_t *e,
                               const config_setting_t *v)
{
    int te = config_setting_type(e), tv = config_setting_type(v), ok = 0;
    if (te == CONFIG_TYPE_FLOAT && (tv == CONFIG_TYPE_INT || tv == CONFIG_TYPE_INT64))
        ok = config_setting_set_float(e, tv == CONFIG_TYPE_INT ? config_setting_get_int(v)
                                                               : (double)config_setting_get_int64(v));
    else if (te == tv && te == CONFIG_TYPE_INT)
        ok = config_setting_set_int(e, config_setting_get_int(v));
    else if (te == tv && te == CONFIG_TYPE_INT64)
        ok = config_setting_set_int64(e, config_setting_get_int64(v));
    else if (te == tv && te == CONFIG_TYPE_FLOAT)
        ok = config_setting_set_float(e, config_setting_get_float(v));
    else if (te == tv && te == CONFIG_TYPE_BOOL)
        ok = config_setting_set_bool(e, config_setting_get_bool(v));
    else if (te == tv && te == CONFIG_TYPE_STRING)
        ok = config_setting_set_string(e, config_setting_get_string(v));
    if (!ok)
        return fl_fail(c->err, FL_EUSAGE,
                       "--set %s: %s is %s, cannot put %s in its place HINT: set the whole "
                       "array, e.g. --set 'folds.use=[0, 1]'",
                       text, key, cfg_type_name(e), cfg_type_name(v));
    config_setting_set_hook(e, (void *)text);
    return FL_OK;
}

/* Sets the last component `part` of the path under cur (key: cur's key path). */
static fl_code set_last(cfg_ctx *c, const char *text, config_setting_t *cur, const char *key, const char *part,
                        const config_setting_t *v)
{
    char ekey[CFG_KEY_MAX];
    int idx;
    if (!config_setting_is_aggregate(cur))
        return fl_fail(c->err, FL_EUSAGE, "--set %s: %s is %s, not a group HINT: it has no key %s", text, key,
                       cfg_type_name(cur), part);
    if (config_setting_is_group(cur)) {
        if (parse_index(part, &idx))
            return fl_fail(c->err, FL_EUSAGE, "--set %s: %s is a group: name one of its keys, not an index", text,
                           key[0] ? key : "the top level");
        if (config_setting_get_member(cur, part))
            config_setting_remove(cur, part);
        if (!copy_setting(cur, part, v, text))
            return fl_fail(c->err, FL_EUSAGE,
                           "--set %s: \"%s\" is not a valid key name HINT: a key starts with a "
                           "letter, then letters, digits, '_' or '-'",
                           text, part);
        return FL_OK;
    }
    int n = config_setting_length(cur);
    if (!parse_index(part, &idx))
        return fl_fail(c->err, FL_EUSAGE,
                       "--set %s: cannot replace a whole element of %s HINT: set one of its "
                       "keys, e.g. %s.%s.epochs",
                       text, key, key, part);
    cfg_key_index(ekey, key, idx);
    if (idx > n)
        return fl_fail(c->err, FL_EUSAGE, "--set %s: %s is past the end (%s has %d element%s)", text, ekey, key, n,
                       n == 1 ? "" : "s");
    if (idx < n) {
        config_setting_t *e = config_setting_get_elem(cur, (unsigned)idx);
        if (config_setting_is_aggregate(e) || config_setting_is_aggregate(v))
            return fl_fail(c->err, FL_EUSAGE, "--set %s: cannot replace %s, which is %s HINT: set one of its keys",
                           text, ekey, cfg_type_name(e));
        return replace_element(c, text, ekey, e, v);
    }
    /* idx == n: append; an array holds scalars of one type. */
    if (config_setting_is_array(cur) &&
        (config_setting_is_aggregate(v) ||
         (n > 0 && config_setting_type(config_setting_get_elem(cur, 0)) != config_setting_type(v))))
        return fl_fail(c->err, FL_EUSAGE, "--set %s: cannot add %s to %s HINT: set the whole array instead", text,
                       cfg_type_name(v), key);
    if (!copy_setting(cur, NULL, v, text))
        return fl_fail(c->err, FL_ENOMEM, "--set %s: out of memory", text);
    return FL_OK;
}

/* Descends from *cur into component parts[*i] (creating a group when missing),
 * appending the step to key. May consume several parts for a dotted name. */
static fl_code step_into(cfg_ctx *c, const char *text, config_setting_t **cur, char *key, char **parts, int *i,
                         int n_parts)
{
    char next[CFG_KEY_MAX];
    const char *part = parts[*i];
    int idx;
    config_setting_t *s = *cur, *child = NULL;
    if (config_setting_is_group(s)) {
        if (parse_index(part, &idx))
            return fl_fail(c->err, FL_EUSAGE, "--set %s: %s is a group: name one of its keys, not an index", text,
                           key[0] ? key : "the top level");
        cfg_key(next, key, part);
        child = config_setting_get_member(s, part);
        if (!child) {
            child = config_setting_add(s, part, CONFIG_TYPE_GROUP);
            if (!child)
                return fl_fail(c->err, FL_EUSAGE,
                               "--set %s: \"%s\" is not a valid key name HINT: a key starts "
                               "with a letter, then letters, digits, '_' or '-'",
                               text, part);
            config_setting_set_hook(child, (void *)text);
        }
    } else if (config_setting_is_list(s)) {
        int n = config_setting_length(s);
        if (parse_index(part, &idx)) {
            cfg_key_index(next, key, idx);
            if (idx > n)
                return fl_fail(c->err, FL_EUSAGE, "--set %s: %s is past the end (%s has %d element%s)", text, next, key,
                               n, n == 1 ? "" : "s");
            if (idx == n) {
                child = config_setting_add(s, NULL, CONFIG_TYPE_GROUP);
                if (!child)
                    return fl_fail(c->err, FL_ENOMEM, "--set %s: out of memory", text);
                config_setting_set_hook(child, (void *)text);
            }
        } else {
            /* A name, perhaps with dots: the longest run of parts that names an element. */
            char name[CFG_KEY_MAX] = "";
            idx = -1;
            for (int j = *i, used = 0; j < n_parts - 1; j++) {
                used += snprintf(name + used, sizeof name - (size_t)used, "%s%s", j > *i ? "." : "", parts[j]);
                if (used >= (int)sizeof name)
                    break;
                int found = element_named(s, name);
                if (found >= 0) {
                    idx = found;
                    *i = j;
                }
            }
            if (idx < 0)
                return no_such_element(c, text, s, key, part);
            cfg_key_index(next, key, idx);
        }
        if (!child)
            child = config_setting_get_elem(s, (unsigned)idx);
    } else {
        return fl_fail(c->err, FL_EUSAGE, "--set %s: %s is %s, not a group HINT: it has no key %s", text, key,
                       cfg_type_name(s), part);
    }
    snprintf(key, CFG_KEY_MAX, "%s", next);
    *cur = child;
    return FL_OK;
}

fl_code cfg_apply_override(cfg_ctx *c, config_t *conf, const char *text)
{
    char *parts[SET_MAX_PARTS], key[CFG_KEY_MAX] = "";
    const char *eq = strchr(text, '=');
    if (!eq || eq == text)
        return fl_fail(c->err, FL_EUSAGE, "--set %s: expected key.path=value HINT: e.g. --set models.0.epochs=1", text);
    char *path = strndup(text, (size_t)(eq - text));
    if (!path)
        return fl_fail(c->err, FL_ENOMEM, "--set %s: out of memory", text);
    int n = 0;
    fl_code rc = FL_OK;
    for (char *p = path;; p++) {
        char *dot = strchr(p, '.');
        if (dot)
            *dot = '\0';
        if (!*p || n == SET_MAX_PARTS) {
            rc = fl_fail(c->err, FL_EUSAGE, "--set %s: %s HINT: e.g. --set models.0.optimizer.lr=0.01", text,
                         *p ? "too many path components" : "empty path component");
            break;
        }
        parts[n++] = p;
        if (!dot)
            break;
        p = dot;
    }
    /* The value, trimmed, read into a scratch config. */
    const char *v0 = eq + 1, *v1 = eq + strlen(eq);
    while (isspace((unsigned char)*v0))
        v0++;
    while (v1 > v0 && isspace((unsigned char)v1[-1]))
        v1--;
    char *value = strndup(v0, (size_t)(v1 - v0));
    config_t vc;
    config_setting_t *v = NULL;
    config_init(&vc);
    if (!rc && !value)
        rc = fl_fail(c->err, FL_ENOMEM, "--set %s: out of memory", text);
    if (!rc)
        rc = parse_value(c, text, value, &vc, &v);
    config_setting_t *cur = config_root_setting(conf);
    for (int i = 0; !rc && i < n - 1; i++)
        rc = step_into(c, text, &cur, key, parts, &i, n);
    if (!rc)
        rc = set_last(c, text, cur, key, parts[n - 1], v);
    config_destroy(&vc);
    free(value);
    free(path);
    return rc;
}
