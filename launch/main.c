/* main.c -- `foldline VERB ...`: verb dispatch, --help and --version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launch/cli.h"
#include "launch/torch_module.h"

static const char *usage =
    "foldline " FOLDLINE_VERSION " -- k-fold training of image classifiers on libtorch, MPI and NCCL\n"
    "\n"
    "usage: foldline VERB [ARGS...]\n"
    "\n"
    "  prep SRC OUT.h5 [--size N|HxW] [--channels 1|3] [--folds K] [--seed S]\n"
    "                  read a competition layout (train.csv, test.csv, train/, test/) or MNIST-style\n"
    "                  IDX files and write the HDF5 data file every rank reads\n"
    "  inspect FILE.h5 [--quick]\n"
    "                  print a data file's schema version, shapes, classes and fold sizes after\n"
    "                  verifying it, or what a predictions file holds\n"
    "  train CONFIG [--fold K] [--set key.path=value]... [--restart]\n"
    "                  train every model x fold job of a run on libtorch, then vote; --fold K trains\n"
    "                  fold K alone, --restart discards the run's results first (with --fold K: fold K's)\n"
    "  vote RUN_DIR [--method soft|hard|soft-soft|soft-hard|hard-hard] [--model NAME] [--out FILE]\n"
    "               [--labels CSV] [--data FILE.h5] [--fit-weights [--fit-metric logloss|acc]]\n"
    "                  vote the folds and models of a run into a submission and a report\n"
    "                  (report.md, report.html)\n"
    "  status RUN_DIR [--watch N]\n"
    "                  every job of a run: done, running, stopped, failed or pending, and the ETA\n"
    "                  (exit status 0 when every job is done, 3 when some are not)\n"
    "  predict RUN_DIR INPUT [--out FILE] [--method M] [--models a,b] [--topk K] [--strict]\n"
    "                  the run's ensemble on new images (a folder, a CSV of image paths or a data\n"
    "                  file), alone or under mpirun/srun: a CSV of classes and probabilities\n"
    "  export RUN_DIR OUT.pt [--models a,b] [--method M]\n"
    "                  the whole ensemble (normalisation, backbones, heads, test-time views, vote)\n"
    "                  as one TorchScript module that plain PyTorch loads\n"
    "\n"
    "  foldline VERB --help   options of one verb\n"
    "  foldline --version     versions of foldline, libtorch, MPI, HDF5 and NCCL\n";

/* train, predict and export: the verb from the libtorch module (launch/torch_module.h), which is
 * loaded for them alone. */
static int main_torch_verb(const char *verb, int argc, char **argv)
{
    fl_error err;
    const fl_torch_verbs_table *t;
    if (cli_torch_module(&t, &err))
        return cli_report(&err);
    if (!strcmp(verb, "train"))
        return t->train(argc, argv);
    if (!strcmp(verb, "predict"))
        return t->predict(argc, argv);
    return t->export_run(argc, argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *verb = argv[1];
    if (!strcmp(verb, "--help") || !strcmp(verb, "-h") || !strcmp(verb, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(verb, "--version") || !strcmp(verb, "version"))
        return cli_version();
    if (!strcmp(verb, "prep"))
        return cli_prep(argc - 1, argv + 1);
    if (!strcmp(verb, "train"))
        return main_torch_verb(verb, argc - 1, argv + 1);
    if (!strcmp(verb, "inspect"))
        return cli_inspect(argc - 1, argv + 1);
    if (!strcmp(verb, "vote"))
        return cli_vote(argc - 1, argv + 1);
    if (!strcmp(verb, "predict"))
        return main_torch_verb(verb, argc - 1, argv + 1);
    if (!strcmp(verb, "export"))
        return main_torch_verb(verb, argc - 1, argv + 1);
    if (!strcmp(verb, "status"))
        return cli_status(argc - 1, argv + 1);
    fprintf(stderr, "foldline: error: unknown verb '%s' HINT: foldline --help lists the verbs\n", verb);
    return 2;
}
