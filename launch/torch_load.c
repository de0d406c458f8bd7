/* torch_load.c -- finds and opens the libtorch module (launch/torch_module.h) for the verbs that
 * need libtorch, so that the others start without loading it. */
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launch/cli.h"
#include "launch/torch_module.h"

#define TORCH_MODULE_HINT                                                                                              \
    "HINT: libfoldline_torch.so is built with foldline and belongs in the folder of the foldline executable (or "      \
    "set " FL_TORCH_MODULE_ENV " to its path); prep, inspect, vote and status work without it"

static char module_path[PATH_MAX + sizeof FL_TORCH_MODULE_NAME + 1];

#ifdef FL_TORCH_LINKED
/* One program with everything linked in (the sanitizer build): the table is right here. */
extern const fl_torch_verbs_table fl_torch_verbs;
#endif

/* $FOLDLINE_TORCH_MODULE, else libfoldline_torch.so next to the executable. */
static fl_code torch_module_locate(fl_error *err)
{
    const char *env = getenv(FL_TORCH_MODULE_ENV);
    if (env && *env) {
        if (strlen(env) >= sizeof module_path)
            return fl_fail(err, FL_EUSAGE, "%s is longer than %zu bytes HINT: name a shorter path", FL_TORCH_MODULE_ENV,
                           sizeof module_path - 1);
        strcpy(module_path, env);
        return FL_OK;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || n >= (ssize_t)sizeof exe - 1)
        return fl_fail(err, FL_EIO,
                       "cannot load the libtorch module: /proc/self/exe does not name this executable, so "
                       "its folder is unknown HINT: set %s to the path of %s",
                       FL_TORCH_MODULE_ENV, FL_TORCH_MODULE_NAME);
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    size_t dir = slash ? (size_t)(slash - exe) + 1 : 0;
    memcpy(module_path, exe, dir);
    strcpy(module_path + dir, FL_TORCH_MODULE_NAME);
    return FL_OK;
}

const char *cli_torch_module_path(void)
{
    if (!module_path[0])
        torch_module_locate(NULL);
    return module_path;
}

fl_code cli_torch_module(const fl_torch_verbs_table **out, fl_error *err)
{
    static const fl_torch_verbs_table *loaded;
    if (loaded) {
        *out = loaded;
        return FL_OK;
    }
#ifdef FL_TORCH_LINKED
    (void)err;
    loaded = &fl_torch_verbs;
    *out = loaded;
    return FL_OK;
#else
    if (torch_module_locate(err))
        return err->code;
    /* RTLD_NOW: a module that misses a symbol of this executable (one from another build) fails
     * here, with dlerror naming the symbol, and not in the middle of a training. */
    void *h = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return fl_fail(err, FL_EIO, "cannot load the libtorch module %s: %s " TORCH_MODULE_HINT, module_path,
                       dlerror());
    const fl_torch_verbs_table *t = dlsym(h, FL_TORCH_VERBS_SYMBOL);
    if (!t)
        return fl_fail(err, FL_EIO, "cannot load the libtorch module %s: it has no symbol %s " TORCH_MODULE_HINT,
                       module_path, FL_TORCH_VERBS_SYMBOL);
    if (t->abi != FL_TORCH_MODULE_ABI || !t->foldline_version || strcmp(t->foldline_version, FOLDLINE_VERSION))
        return fl_fail(err, FL_EIO,
                       "cannot load the libtorch module %s: it belongs to foldline %s (module ABI %d), this is "
                       "foldline %s (module ABI %d) HINT: use the %s built together with this foldline executable",
                       module_path, t->foldline_version ? t->foldline_version : "?", t->abi, FOLDLINE_VERSION,
                       FL_TORCH_MODULE_ABI, FL_TORCH_MODULE_NAME);
    loaded = t;
    *out = t;
    return FL_OK;
#endif
}
