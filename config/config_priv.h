/* config_priv.h -- what the config loader's files share (not a public API).
 *
 * config_walk.c: reading typed values out of the libconfig tree with
 * messages that name file:line (or the --set override) and the key path.
 * config_set.c: applying --set overrides to the tree.
 * config_model.c: one element of the models list.
 * config.c: the top-level sections, fl_config_load, fl_config_check_data.
 *
 * Key paths are built as the walk descends: "run.seed", "models.[1].head.type".
 * Settings an override created carry the override's text as their libconfig
 * hook, which is how messages know to say "--set TEXT" instead of file:line.
 */
#ifndef FOLDLINE_CONFIG_PRIV_H
#define FOLDLINE_CONFIG_PRIV_H

#include <libconfig.h>
#include <stddef.h>

#include "base/error.h"
#include "trainer/spec.h"

#define CFG_KEY_MAX 256

typedef struct {
    const char *path; /* the config file as given, for messages */
    char *src_name;   /* the file whose text is in src (for re-reading integer literals) */
    char *src;        /* NULL until needed */
    fl_error *err;
} cfg_ctx;

/* A range of doubles: lo and hi (use +-INFINITY for none), each open or closed. */
typedef struct {
    double lo, hi;
    int lo_open, hi_open;
} cfg_range;

extern const cfg_range cfg_positive;     /* (0, inf) */
extern const cfg_range cfg_nonnegative;  /* [0, inf) */
extern const cfg_range cfg_unit;         /* [0, 1] */
extern const cfg_range cfg_unit_open_hi; /* [0, 1) */
extern const cfg_range cfg_unit_open_lo; /* (0, 1] */

void cfg_ctx_free(cfg_ctx *c);

/* "--set TEXT", "file:line" or "file" for setting s (NULL: the file). */
void cfg_where(const cfg_ctx *c, const config_setting_t *s, char *out, size_t n);
/* Fails with "<where s>: <key>: <message>". */
fl_code cfg_fail(cfg_ctx *c, const config_setting_t *s, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Fails with "<where g>: missing key <gkey>.<name><hint>" (g may be NULL). */
fl_code cfg_missing(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, const char *hint);

/* out = gkey.name (or name at the top level); out = gkey.[i]. */
void cfg_key(char *out, const char *gkey, const char *name);
void cfg_key_index(char *out, const char *gkey, int i);

/* "an integer", "a string", ... for messages. */
const char *cfg_type_name(const config_setting_t *s);
/* "a, b, c" from a NULL-terminated list. */
void cfg_join(char *out, size_t n, const char *const *names);
int cfg_in(const char *s, const char *const *names);

/* Every member of group g must be in allowed; the HINT says "<owner> takes ...". */
fl_code cfg_members(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *const *allowed,
                    const char *owner);
/* Checks that s is a group: "expected a group { ... }, found ...". */
fl_code cfg_group(cfg_ctx *c, const config_setting_t *s, const char *key);

/* Typed values of setting s called key. */
fl_code cfg_int(cfg_ctx *c, const config_setting_t *s, const char *key, long long lo, long long hi, long long *out);
fl_code cfg_float(cfg_ctx *c, const config_setting_t *s, const char *key, cfg_range r, double *out);
fl_code cfg_bool(cfg_ctx *c, const config_setting_t *s, const char *key, int *out);
/* A non-empty string shorter than cap. */
fl_code cfg_string(cfg_ctx *c, const config_setting_t *s, const char *key, char *out, size_t cap);
/* A string from allowed (NULL-terminated); returns its index in *idx when idx is not NULL. */
fl_code cfg_enum(cfg_ctx *c, const config_setting_t *s, const char *key, const char *const *allowed, char *out,
                 size_t cap, int *idx);
/* A name for a folder: [A-Za-z0-9_.-]+, not "." or "..", shorter than cap. */
fl_code cfg_name(cfg_ctx *c, const config_setting_t *s, const char *key, char *out, size_t cap);
/* An array or list of scalars with 1..max elements (min_n 0 allows empty); *n gets the count. */
fl_code cfg_values(cfg_ctx *c, const config_setting_t *s, const char *key, int min_n, int max_n, int *n);

/* The same for member `name` of group g (g may be NULL: absent). Absent
 * members leave *out as it is (the default) and return FL_OK. */
fl_code cfg_opt_int(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, long long lo,
                    long long hi, int *out);
fl_code cfg_opt_float(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, cfg_range r,
                      double *out);
fl_code cfg_opt_bool(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, int *out);
fl_code cfg_opt_string(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, char *out,
                       size_t cap);
fl_code cfg_opt_enum(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name,
                     const char *const *allowed, char *out, size_t cap);
/* gkey.precision ("run" or "models.[i]"): "fp32" | "bf16" | "fp16" into out
 * (8 bytes), its line into *line (absent: both unchanged). */
fl_code cfg_opt_precision(cfg_ctx *c, const config_setting_t *g, const char *gkey, char *out, int *line);
/* Member `name` of g, or NULL (also when g is NULL). */
config_setting_t *cfg_member(const config_setting_t *g, const char *name);

/* gkey.name ("data.mean", "models.[1].data.std"): 1 to 3 numbers in r into
 * v, their count into *n and their line into *line (absent: unchanged). */
fl_code cfg_per_channel(cfg_ctx *c, const config_setting_t *g, const char *gkey, const char *name, cfg_range r,
                        double *v, int *n, int *line);
/* A data file path (setting s called key) into out, which must be readable. */
fl_code cfg_data_file(cfg_ctx *c, const config_setting_t *s, const char *key, char *out, size_t cap);

/* Applies override text (key.path=value) to the tree of conf. */
fl_code cfg_apply_override(cfg_ctx *c, config_t *conf, const char *text);

/* Fills m from the group s (models.[i]); gkey is "models.[i]". */
fl_code cfg_model(cfg_ctx *c, const config_setting_t *s, const char *gkey, fl_model_cfg *m);

#endif
