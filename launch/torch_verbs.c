/* torch_verbs.c -- the entry table of the libtorch module (launch/torch_module.h): the one symbol
 * the `foldline` executable looks up in libfoldline_torch.so after dlopen. */
#include "launch/cli.h"
#include "launch/torch_module.h"

__attribute__((visibility("default"))) const fl_torch_verbs_table fl_torch_verbs = {
    .abi = FL_TORCH_MODULE_ABI,
    .foldline_version = FOLDLINE_VERSION,
    .train = cli_train,
    .predict = cli_predict,
    .export_run = cli_export,
    .torch_info = fl_torch_get_info,
};
