/* cli_export.c -- `foldline export RUN_DIR OUT.pt [options]`: a trained
 * run's whole ensemble as one TorchScript module (trainer/torch/export.h),
 * built from the very models `foldline predict` loads (trainer/predict.h)
 * and written through a temporary file and a rename. Never starts MPI. */
#include <stdio.h>
#include <string.h>

#include "base/outpath.h"
#include "base/tempfile.h"
#include "launch/cli.h"
#include "trainer/predict.h"
#include "trainer/run.h"
#include "trainer/torch/export.h"

static const char *export_usage =
    "usage: foldline export RUN_DIR OUT.pt [options]\n"
    "\n"
    "Writes one TorchScript module holding the run's whole ensemble: the normalisation, each distinct\n"
    "backbone once (a frozen model's folds share theirs), every fold's head, the test-time views and the\n"
    "vote. Its input is uint8 images (N, C, H, W) at the run's size and channels; its output float64\n"
    "(N, classes): the ensemble's class probabilities for the soft methods, the shares of the weighted\n"
    "votes for the hard ones. Plain PyTorch loads it:\n"
    "\n"
    "  m = torch.jit.load(\"OUT.pt\")\n"
    "  probs = m(images)            # images: torch.uint8 (N, C, H, W)\n"
    "  classes = probs.argmax(1)\n"
    "\n"
    "  --models a,b   the models of the run to include (default: all; they must share one image size)\n"
    "  --method M     soft | hard | soft-soft | soft-hard | hard-hard (default: run.cfg's vote_method, or\n"
    "                 soft-soft when RUN_DIR/ensemble/weights.txt exists)\n"
    "\n"
    "After foldline vote --fit-weights, RUN_DIR/ensemble/weights.txt's fitted weights and temperatures weigh\n"
    "the soft-soft vote of all the run's models, as vote's submission and foldline predict; another --method\n"
    "or a subset of --models uses run.cfg's weights. A line on stderr says which.\n";

/* What the command line names. */
typedef struct {
    const char *run_dir, *out, *models, *method;
} export_args;

/* The command line into a. Returns 1 when --help printed the usage, 0, or
 * -1 for a usage error (in err). */
static int export_parse_args(int argc, char **argv, export_args *a, fl_error *err)
{
    for (int i = 1; i < argc; i++) {
        const char *v = NULL, **slot = NULL;
        int r = 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(export_usage, stdout);
            return 1;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--models", &v)) != 0)
            slot = &a->models;
        else if ((r = cli_opt_value(argc, argv, &i, "--method", &v)) != 0)
            slot = &a->method;
        if (r < 0 || (slot && !*v)) {
            fl_fail(err, FL_EUSAGE, "export: option '%s' needs a value HINT: foldline export --help", argv[i]);
            return -1;
        }
        if (slot) {
            *slot = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fl_fail(err, FL_EUSAGE, "export: unknown option '%s' HINT: foldline export --help", argv[i]);
            return -1;
        } else if (!a->run_dir) {
            a->run_dir = argv[i];
        } else if (!a->out) {
            a->out = argv[i];
        } else {
            fl_fail(err, FL_EUSAGE, "export: unexpected argument '%s' HINT: foldline export RUN_DIR OUT.pt [options]",
                    argv[i]);
            return -1;
        }
    }
    if (!a->run_dir || !a->out) {
        fl_fail(err, FL_EUSAGE,
                "export: needs RUN_DIR and OUT.pt HINT: foldline export RUN_DIR OUT.pt [options]; see foldline export "
                "--help");
        return -1;
    }
    return 0;
}

/* One module takes one image size: every model's must be the first one's. */
static fl_code export_check_sizes(const fl_run *run, fl_error *err)
{
    for (int m = 1; m < run->n_models; m++) {
        const fl_run_model *a = &run->models[0], *b = &run->models[m];
        if (a->channels != b->channels || a->height != b->height || a->width != b->width)
            return fl_fail(
                err, FL_EUSAGE,
                "export: a size mismatch: model %s takes %dx%d images of %d channels, model %s %dx%d of %d; one module "
                "takes one image size HINT: export each size on its own (--models %s, then --models %s)",
                a->name, a->height, a->width, a->channels, b->name, b->height, b->width, b->channels, a->name, b->name);
    }
    return FL_OK;
}

/* OUT.pt into final (cap): a path this command may write, none of the
 * run's files it reads. */
static fl_code export_out_path(const fl_run *run, const char *out, char *final, size_t cap, fl_error *err)
{
    char *inputs[FL_MAX_MODELS * FL_MAX_FOLDS * 4 + 2];
    int n = fl_run_inputs(run, inputs, (int)(sizeof inputs / sizeof *inputs));
    fl_code rc = fl_outpath_check("OUT.pt", out, inputs, n, final, cap, err);
    fl_run_free_paths(inputs, n);
    return rc;
}

/* The ensemble of the predictor's models as one TorchScript module, written
 * to a temporary file beside final, then renamed to it. */
static fl_code export_write(const fl_run *run, fl_predictor *pred, const char *final, const char *out, fl_error *err)
{
    fl_export_model em[FL_MAX_MODELS];
    fl_model *folds[FL_MAX_MODELS][FL_MAX_FOLDS];
    for (int m = 0; m < run->n_models; m++) {
        for (int i = 0; i < run->man.n_folds; i++)
            folds[m][i] = fl_predictor_fold(pred, m, i);
        em[m] = (fl_export_model){
            run->models[m].weight, run->models[m].temperature, run->models[m].frozen, run->man.n_folds, folds[m],
            run->models[m].n_tta,  run->models[m].tta};
    }
    fl_tempfile t;
    fl_code rc = fl_tempfile_begin(&t, final, 1, err);
    if (rc)
        return rc;
    if ((rc = fl_export_ensemble(em, run->n_models, run->method, run->fitted, t.tmp_path, err))) {
        fl_tempfile_abort(&t);
        fl_error_prefix(err, "%s", out);
        return rc;
    }
    return fl_tempfile_commit(&t, err);
}

int cli_export(int argc, char **argv)
{
    fl_error err;
    fl_error_clear(&err);
    export_args a = {NULL, NULL, NULL, NULL};
    int parsed = export_parse_args(argc, argv, &a, &err);
    if (parsed)
        return parsed > 0 ? 0 : cli_report(&err);
    fl_tempfile_install_signal_cleanup();
    static fl_run run;
    fl_predictor *pred = NULL;
    char final[4096];
    fl_code rc = fl_run_open(a.run_dir, a.models, a.method, &run, &err);
    if (!rc)
        rc = export_check_sizes(&run, &err);
    if (!rc)
        rc = export_out_path(&run, a.out, final, sizeof final, &err);
    if (!rc)
        rc = fl_predictor_new(&run, "cpu", &pred, &err);
    if (!rc)
        rc = export_write(&run, pred, final, a.out, &err);
    if (!rc)
        fprintf(stderr, "export: weights %s\n", run.weights_line);
    if (!rc)
        fprintf(stderr, "export: %d model%s x %d fold%s (%s), images uint8 (N, %d, %d, %d); wrote %s\n", run.n_models,
                run.n_models == 1 ? "" : "s", run.man.n_folds, run.man.n_folds == 1 ? "" : "s", run.method,
                run.models[0].channels, run.models[0].height, run.models[0].width, final);
    fl_predictor_free(pred);
    fl_run_free(&run);
    return rc ? cli_report(&err) : 0;
}
