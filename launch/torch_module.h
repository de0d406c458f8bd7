/* torch_module.h -- the seam between the `foldline` executable and its libtorch module.
 *
 * Loading libtorch (and the ~290 shared libraries it pulls in) costs most of a second of CPU
 * time, and prep, inspect, vote, status and --help need none of it. So everything that calls
 * libtorch -- the bridge (trainer/torch/), the training loop and prediction over it (trainer/job.c,
 * fused.c, predict.c) and the verbs train, predict and export -- is linked into a separate module,
 * libfoldline_torch.so, installed next to the executable. The executable opens it with dlopen
 * only for those verbs and for --version.
 *
 * The module holds no copy of the core: errors, config, data files, MPI and the rest live in the
 * executable, which exports its symbols (-rdynamic) for the module to bind to, so that every
 * global exists once. The module exposes one symbol, FL_TORCH_VERBS_SYMBOL, a table of the entry
 * points below; the executable checks its ABI number and foldline version before using it.
 *
 * Where the module is: $FOLDLINE_TORCH_MODULE when set, else libfoldline_torch.so in the folder of
 * the executable (/proc/self/exe, symbolic links resolved). A build that links everything into one
 * program (tests/sanitize/, FL_TORCH_LINKED) gets the table without dlopen. */
#ifndef FOLDLINE_TORCH_MODULE_H
#define FOLDLINE_TORCH_MODULE_H

#include "base/error.h"
#include "trainer/torch/bridge.h"

#define FL_TORCH_MODULE_NAME  "libfoldline_torch.so"
#define FL_TORCH_MODULE_ENV   "FOLDLINE_TORCH_MODULE"
#define FL_TORCH_VERBS_SYMBOL "fl_torch_verbs"
#define FL_TORCH_MODULE_ABI   1 /* bump when this table or anything the module shares changes shape */

typedef struct {
    int abi;                      /* FL_TORCH_MODULE_ABI of the module's build */
    const char *foldline_version; /* FOLDLINE_VERSION of the module's build */
    int (*train)(int argc, char **argv);
    int (*predict)(int argc, char **argv);
    int (*export_run)(int argc, char **argv);
    fl_code (*torch_info)(fl_torch_info *info, fl_error *err);
} fl_torch_verbs_table;

/* Loads the module (once per process) and sets *out to its table; on failure a one-line message
 * with the module's path, dlerror's reason and a HINT (FL_EIO). */
fl_code cli_torch_module(const fl_torch_verbs_table **out, fl_error *err);

/* The path cli_torch_module loads (or would load), for messages. */
const char *cli_torch_module_path(void);

#endif
