/* cli_vote.c -- `foldline vote RUN_DIR [options]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vote/vote.h"
#include "launch/cli.h"

static const char *vote_usage =
    "usage: foldline vote RUN_DIR [options]\n"
    "\n"
    "Reads RUN_DIR/run.cfg (written by foldline train), every RUN_DIR/<model>/fold<k>/preds.h5 it names and\n"
    "the data file; writes the submission (ID,image_path,target) and RUN_DIR/ensemble/report.md with the\n"
    "out-of-fold accuracy of every fold, model and method (and test accuracy where test labels exist), and\n"
    "prints the report. RUN_DIR/ensemble/report.html beside it draws learning curves, the confusion matrix,\n"
    "per-class accuracy, the models' agreement and calibration (one file, no network, no script).\n"
    "\n"
    "  --method M     what the submission holds (default: run.cfg's vote_method):\n"
    "                   soft       one model: mean of its folds' probabilities\n"
    "                   hard       one model: majority of its folds' argmaxes\n"
    "                   soft-soft  weighted mean of every fold's probabilities of every model\n"
    "                   soft-hard  weighted majority of the models' soft votes\n"
    "                   hard-hard  weighted majority of every model x fold argmax\n"
    "                 ties go to the lowest class id\n"
    "  --model NAME   the model of soft and hard (needed when the run has several)\n"
    "  --out FILE     submission path (default RUN_DIR/ensemble/submission.csv); - writes it to stdout (and\n"
    "                 the report to stderr). Never a device, FIFO, socket or directory, nor a file the vote\n"
    "                 reads (run.cfg, the data file, preds.h5, models); a symbolic link replaces its target\n"
    "  --labels CSV   test labels (image_path,target) for test accuracy; default: the data file's\n"
    "                 /test/labels when it has them\n"
    "  --data FILE.h5 the data file (default: run.cfg's data_file)\n"
    "  --fit-weights  fit the soft-soft vote's model weights on the OOF predictions (greedy ensemble\n"
    "                 selection with replacement, Caruana et al. 2004); the submission is that vote, and the\n"
    "                 weights go to RUN_DIR/ensemble/weights.txt (a vote without it removes that file)\n"
    "  --fit-metric M what selection optimises: logloss (default) or acc\n"
    "  --fit-temperature  also fit one temperature per model on its OOF log-loss first\n"
    "  --fit-rounds N rounds of greedy selection (default 50)\n"
    "  --quiet        do not print the report\n";

int cli_vote(int argc, char **argv)
{
    fl_error err;
    fl_error_clear(&err);
    fl_vote_options o = {0};
    o.echo = stdout;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r = 0;
        const char **slot = NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(vote_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--quiet")) {
            o.echo = NULL;
            continue;
        } else if (!strcmp(argv[i], "--fit-weights")) {
            o.fit_weights = 1;
            continue;
        } else if (!strcmp(argv[i], "--fit-temperature")) {
            o.fit_temperature = 1;
            continue;
        }
        const char *rounds = NULL;
        if ((r = cli_opt_value(argc, argv, &i, "--method", &v)) != 0)
            slot = &o.method;
        else if ((r = cli_opt_value(argc, argv, &i, "--model", &v)) != 0)
            slot = &o.model;
        else if ((r = cli_opt_value(argc, argv, &i, "--out", &v)) != 0)
            slot = &o.out_path;
        else if ((r = cli_opt_value(argc, argv, &i, "--labels", &v)) != 0)
            slot = &o.labels_csv;
        else if ((r = cli_opt_value(argc, argv, &i, "--data", &v)) != 0)
            slot = &o.data_file;
        else if ((r = cli_opt_value(argc, argv, &i, "--fit-metric", &v)) != 0)
            slot = &o.fit_metric;
        else if ((r = cli_opt_value(argc, argv, &i, "--fit-rounds", &v)) != 0)
            slot = &rounds;
        if (r < 0) {
            fl_fail(&err, FL_EUSAGE, "vote: option '%s' needs a value HINT: foldline vote --help", argv[i]);
            return cli_report(&err);
        }
        if (slot) {
            if (!*v) {
                fl_fail(&err, FL_EUSAGE, "vote: option '%s' has an empty value HINT: foldline vote --help", argv[i]);
                return cli_report(&err);
            }
            *slot = v;
            if (slot == &rounds) {
                char *end;
                long n = strtol(v, &end, 10);
                if (*end || n < 1 || n > 100000) {
                    fl_fail(&err, FL_EUSAGE,
                            "vote: --fit-rounds '%s' is not a count 1..100000 HINT: foldline vote --help", v);
                    return cli_report(&err);
                }
                o.fit_rounds = (int)n;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fl_fail(&err, FL_EUSAGE, "vote: unknown option '%s' HINT: foldline vote --help", argv[i]);
            return cli_report(&err);
        } else if (!o.run_dir) {
            o.run_dir = argv[i];
        } else {
            fl_fail(&err, FL_EUSAGE, "vote: unexpected argument '%s' HINT: foldline vote RUN_DIR [options]", argv[i]);
            return cli_report(&err);
        }
    }
    if ((o.fit_metric || o.fit_temperature || o.fit_rounds) && !o.fit_weights) {
        fl_fail(&err, FL_EUSAGE,
                "vote: --fit-metric, --fit-temperature and --fit-rounds go with --fit-weights HINT: add --fit-weights");
        return cli_report(&err);
    }
    if (o.out_path && !strcmp(o.out_path, "-") && o.echo)
        o.echo = stderr; /* stdout holds the CSV alone */
    if (!o.run_dir) {
        fl_fail(&err, FL_EUSAGE, "vote: needs RUN_DIR HINT: foldline vote RUN_DIR [options]; see foldline vote --help");
        return cli_report(&err);
    }
    return fl_vote_run(&o, &err) ? cli_report(&err) : 0;
}
