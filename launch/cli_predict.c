/* cli_predict.c -- `foldline predict RUN_DIR INPUT [options]`: a trained
 * run's ensemble on new images.
 *
 * The images (dataset/imagelist.h) are read as prep stores them, at each
 * model's size and channels; every fold of every chosen model predicts them
 * with its test-time views (trainer/predict.h); the vote is `foldline
 * vote`'s (vote/vote_sum.h), so the run's own test images give back its
 * submission and its preds.h5 probabilities.
 *
 * Alone, or under mpirun / srun (MPI starts only then): the rows go in chunks,
 * each chunk's rows shared among the ranks in whole units of the models'
 * batches, so that every batch holds the same images whatever the number of
 * ranks (and the same as the run's test prediction, alone). Each rank sends
 * its rows' per-fold probabilities to rank 0, which votes and writes the CSV
 * in input order, through a temporary file and a rename.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset/imagelist.h"
#include "dist/group.h"
#include "base/outpath.h"
#include "dataset/csv.h"
#include "base/tempfile.h"
#include "vote/vote_sum.h"
#include "base/cores.h"
#include "dist/world.h"
#include "launch/cli.h"
#include "trainer/predict.h"
#include "trainer/run.h"

static const char *predict_usage =
    "usage: foldline predict RUN_DIR INPUT [options]\n"
    "\n"
    "Predicts images with a trained run: every fold of every chosen model, each with its test-time views,\n"
    "and the run's vote. INPUT is a folder of images (.png, .jpg, .jpeg, searched recursively), a CSV with\n"
    "an image_path column (paths relative to the CSV's folder), or a foldline data file (its test rows).\n"
    "Images are decoded and resized exactly as foldline prep does, to the size and channels of the run's\n"
    "data file. Runs alone, or under mpirun / srun with the rows shared among the ranks.\n"
    "\n"
    "Writes a CSV: image_path,target,class_name, then for the soft methods prob (the winning class's\n"
    "ensemble probability) and top1,top1_prob,...,topK,topK_prob; for the hard methods votes (its share\n"
    "of the weighted votes) and top1,top1_votes,... (topN: class names, best first, ties to the lowest\n"
    "class id).\n"
    "\n"
    "Weights: after foldline vote --fit-weights, RUN_DIR/ensemble/weights.txt's fitted weights and\n"
    "temperatures weigh the soft-soft vote of all the run's models, as vote's submission; another --method\n"
    "or a subset of --models uses run.cfg's weights. A line on stderr says which.\n"
    "\n"
    "  --out FILE     where the CSV goes (default RUN_DIR/ensemble/predictions.csv); - for stdout\n"
    "  --method M     soft | hard | soft-soft | soft-hard | hard-hard (default: run.cfg's vote_method, or\n"
    "                 soft-soft when RUN_DIR/ensemble/weights.txt exists)\n"
    "  --models a,b   the models of the run to use (default: all)\n"
    "  --topk K       top classes per row (default 5, at most the class count; 0: none)\n"
    "  --strict       refuse an unreadable image instead of skipping it with a warning\n"
    "  --device D     cpu (default), cuda, cuda:N\n"
    "  --threads N    threads per rank (default: the host's cores over its ranks); the same count per rank\n"
    "                 gives the same CSV bit for bit whatever the number of ranks\n";

typedef struct {
    const char *run_dir, *input, *out, *method, *models, *device;
    long topk, threads;
    int strict;
} predict_opts;

static int predict_parse(int argc, char **argv, predict_opts *o, fl_error *err)
{
    o->topk = -1;
    o->device = "cpu";
    const char *topk = NULL, *threads = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL, **slot = NULL;
        int r = 0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(predict_usage, stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--strict")) {
            o->strict = 1;
            continue;
        }
        if ((r = cli_opt_value(argc, argv, &i, "--out", &v)) != 0)
            slot = &o->out;
        else if ((r = cli_opt_value(argc, argv, &i, "--method", &v)) != 0)
            slot = &o->method;
        else if ((r = cli_opt_value(argc, argv, &i, "--models", &v)) != 0)
            slot = &o->models;
        else if ((r = cli_opt_value(argc, argv, &i, "--topk", &v)) != 0)
            slot = &topk;
        else if ((r = cli_opt_value(argc, argv, &i, "--device", &v)) != 0)
            slot = &o->device;
        else if ((r = cli_opt_value(argc, argv, &i, "--threads", &v)) != 0)
            slot = &threads;
        if (r < 0)
            return fl_fail(err, FL_EUSAGE, "predict: option '%s' needs a value HINT: foldline predict --help", argv[i]),
                   -1;
        if (slot) {
            if (!*v)
                return fl_fail(err, FL_EUSAGE, "predict: option '%s' has an empty value HINT: foldline predict --help",
                               argv[i]),
                       -1;
            *slot = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return fl_fail(err, FL_EUSAGE, "predict: unknown option '%s' HINT: foldline predict --help", argv[i]), -1;
        } else if (!o->run_dir) {
            o->run_dir = argv[i];
        } else if (!o->input) {
            o->input = argv[i];
        } else {
            return fl_fail(err, FL_EUSAGE,
                           "predict: unexpected argument '%s' HINT: foldline predict RUN_DIR INPUT [options]", argv[i]),
                   -1;
        }
    }
    if (!o->run_dir || !o->input)
        return fl_fail(err, FL_EUSAGE,
                       "predict: needs RUN_DIR and INPUT HINT: foldline predict RUN_DIR INPUT [options]; see foldline "
                       "predict --help"),
               -1;
    if (topk && cli_parse_int("--topk", topk, 0, 1000000, &o->topk, err))
        return -1;
    if (threads && cli_parse_int("--threads", threads, 1, 4096, &o->threads, err))
        return -1;
    return 0;
}

/* Everything one predict holds. */
typedef struct {
    predict_opts o;
    fl_world world;
    fl_group *group;
    int rank, size;
    fl_run run;
    fl_image_list list;
    fl_predictor *pred;
    char out_path[4096];
    int k;                       /* top classes per row */
    int64_t W;                   /* floats per row: every model x fold's probabilities, then the bad flag */
    int64_t unit, rank_rows;     /* rows: the share unit (whole batches of every model), a rank's rows per chunk */
    int shape_of[FL_MAX_MODELS]; /* model -> its image buffer (models of one shape share one) */
    int n_shapes;
    uint8_t *images[FL_MAX_MODELS];
    int *bad;          /* (rank_rows) */
    fl_error *bad_err; /* (rank_rows) */
    float *mine, *all; /* (rank_rows, W); rank 0: (rank_rows * size, W) */
    FILE *csv;
    fl_tempfile tmp;
    int have_tmp;
    int64_t written, skipped;
    int header_done;
} predict_ctx;

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* The share unit, the chunk, and the buffers. */
static fl_code predict_plan(predict_ctx *p, fl_error *err)
{
    const fl_run *r = &p->run;
    int64_t unit = 1, image_max = 1;
    for (int m = 0; m < r->n_models; m++) {
        const fl_run_model *rm = &r->models[m];
        unit = unit / gcd64(unit, rm->batch) * rm->batch;
        if (unit > 4096)
            unit = 4096 + 1;
        int64_t bytes = (int64_t)rm->channels * rm->height * rm->width;
        image_max = bytes > image_max ? bytes : image_max;
        p->shape_of[m] = -1;
        for (int q = 0; q < m && p->shape_of[m] < 0; q++)
            if (r->models[q].channels == rm->channels && r->models[q].height == rm->height &&
                r->models[q].width == rm->width)
                p->shape_of[m] = p->shape_of[q];
        if (p->shape_of[m] < 0)
            p->shape_of[m] = p->n_shapes++;
    }
    if (unit > 4096) /* batches too unlike to align: any rank count gives the same classes, up to rounding */
        unit = 1;
    p->W = (int64_t)r->n_models * r->man.n_folds * r->num_classes + 1;
    int64_t rows = (64ll << 20) / (image_max * p->n_shapes); /* images of a rank's rows: 64 MiB */
    int64_t by_probs = (256ll << 20) / (p->W * 4 * p->size); /* rank 0's gathered rows: 256 MiB */
    rows = rows < by_probs ? rows : by_probs;
    rows = rows < 4096 ? rows : 4096;
    int64_t bmax = 1;
    for (int m = 0; m < r->n_models; m++)
        bmax = r->models[m].batch > bmax ? r->models[m].batch : bmax;
    rows = rows > bmax ? rows : bmax;
    p->unit = unit;
    p->rank_rows = (rows + unit - 1) / unit * unit;
    for (int s = 0; s < p->n_shapes; s++)
        for (int m = 0; m < r->n_models; m++)
            if (p->shape_of[m] == s && !p->images[s]) {
                const fl_run_model *rm = &r->models[m];
                if (!(p->images[s] = malloc((size_t)p->rank_rows * rm->channels * rm->height * rm->width)))
                    return fl_fail(err, FL_ENOMEM, "out of memory for %lld images", (long long)p->rank_rows);
            }
    p->bad = calloc((size_t)p->rank_rows, sizeof *p->bad);
    p->bad_err = calloc((size_t)p->rank_rows, sizeof *p->bad_err);
    p->mine = malloc(sizeof *p->mine * (size_t)(p->rank_rows * p->W));
    if (p->rank == 0)
        p->all = malloc(sizeof *p->all * (size_t)(p->rank_rows * p->size * p->W));
    if (!p->bad || !p->bad_err || !p->mine || (p->rank == 0 && !p->all))
        return fl_fail(err, FL_ENOMEM, "out of memory for the predictions of %lld rows", (long long)p->rank_rows);
    return FL_OK;
}

/* Rank `rank`'s rows [*lo, *hi) of the chunk [c0, c0 + n): whole units. */
static void predict_share(const predict_ctx *p, int64_t c0, int64_t n, int rank, int64_t *lo, int64_t *hi)
{
    int64_t units = (n + p->unit - 1) / p->unit, ulo, uhi;
    fl_group_share(units, rank, p->size, &ulo, &uhi);
    *lo = c0 + ulo * p->unit < c0 + n ? c0 + ulo * p->unit : c0 + n;
    *hi = c0 + uhi * p->unit < c0 + n ? c0 + uhi * p->unit : c0 + n;
}

/* This rank's rows [lo, hi): images of every shape, then every model in its batches. */
static fl_code predict_rows(predict_ctx *p, int64_t lo, int64_t hi, fl_error *err)
{
    const fl_run *r = &p->run;
    int64_t n = hi - lo;
    fl_code rc = FL_OK;
    for (int64_t i = 0; i < n; i++)
        p->bad[i] = 0;
    for (int s = 0; s < p->n_shapes && !rc; s++) {
        const fl_run_model *rm = NULL;
        for (int m = 0; m < r->n_models && !rm; m++)
            if (p->shape_of[m] == s)
                rm = &r->models[m];
        int *bad = malloc(sizeof *bad * (size_t)(n ? n : 1));
        if (!bad)
            return fl_fail(err, FL_ENOMEM, "out of memory");
        rc = fl_image_list_read(&p->list, lo, n, rm->channels, rm->height, rm->width, p->images[s], bad, p->bad_err,
                                err);
        for (int64_t i = 0; !rc && i < n; i++)
            p->bad[i] |= bad[i];
        free(bad);
    }
    for (int64_t i = 0; !rc && i < n; i++) {
        if (!p->bad[i])
            continue;
        if (p->o.strict)
            return fl_fail(err, FL_EINPUT, "%s HINT: remove or fix the image, or leave out --strict to skip it",
                           p->bad_err[i].msg);
        fprintf(stderr, "foldline: warning: skipped an unreadable image (--strict refuses it): %s\n",
                p->bad_err[i].msg);
    }
    int64_t off = 0;
    for (int m = 0; m < r->n_models && !rc; m++) {
        const fl_run_model *rm = &r->models[m];
        size_t bytes = (size_t)rm->channels * rm->height * rm->width;
        for (int64_t b = 0; b < n && !rc; b += rm->batch) {
            int B = (int)(n - b < rm->batch ? n - b : rm->batch);
            rc = fl_predictor_model(p->pred, m, p->images[p->shape_of[m]] + (size_t)b * bytes, B,
                                    p->mine + (size_t)b * p->W + off, p->W, err);
        }
        off += (int64_t)r->man.n_folds * r->num_classes;
    }
    for (int64_t i = 0; i < n; i++)
        p->mine[(size_t)i * p->W + p->W - 1] = (float)p->bad[i];
    return rc;
}

static void predict_header(predict_ctx *p)
{
    const char *what = fl_vote_method_is_soft(p->run.method) ? "prob" : "votes";
    p->header_done = 1;
    fprintf(p->csv, "image_path,target,class_name,%s", what);
    for (int j = 1; j <= p->k; j++)
        fprintf(p->csv, ",top%d,top%d_%s", j, j, what);
    fputc('\n', p->csv);
}

/* Rank 0: the vote of the chunk's n rows (all, W floats each), then its CSV rows. */
static fl_code predict_vote(predict_ctx *p, int64_t c0, int64_t n, fl_error *err)
{
    const fl_run *r = &p->run;
    const int C = r->num_classes, F = r->man.n_folds;
    fl_vote_sums s;
    fl_code rc = fl_vote_sums_init(&s, n, C, err);
    double *scores = malloc(sizeof *scores * (size_t)C);
    int *order = malloc(sizeof *order * (size_t)C);
    if (rc || !scores || !order) {
        free(scores);
        free(order);
        fl_vote_sums_free(&s);
        return rc ? rc : fl_fail(err, FL_ENOMEM, "out of memory");
    }
    if (!p->header_done) /* with the first rows: a refusal before them leaves stdout empty */
        predict_header(p);
    for (int m = 0; m < r->n_models; m++) { /* fitted: weights.txt's temperatures and weights, as vote applies them */
        fl_vote_sums_model_begin(&s);
        for (int i = 0; i < F; i++)
            if (r->fitted)
                fl_vote_sums_add_fold_tempered(&s, p->all + ((size_t)m * F + i) * C, p->W, r->models[m].temperature);
            else
                fl_vote_sums_add_fold(&s, p->all + ((size_t)m * F + i) * C, p->W);
        if (r->fitted)
            fl_vote_sums_model_end_fitted(&s, r->models[m].weight);
        else
            fl_vote_sums_model_end(&s, r->models[m].weight, NULL, NULL);
    }
    for (int64_t i = 0; i < n; i++) {
        if (p->all[(size_t)i * p->W + p->W - 1] != 0) {
            p->skipped++;
            continue;
        }
        int32_t t = fl_vote_sums_row(&s, r->method, i, scores);
        fl_csv_write_field(p->csv, p->list.paths[c0 + i]);
        fprintf(p->csv, ",%d,", t);
        fl_csv_write_field(p->csv, r->classes[t]);
        fprintf(p->csv, ",%.9g", scores[t]);
        /* the top k: best first, ties to the lowest class id (a stable selection) */
        for (int c = 0; c < C; c++)
            order[c] = c;
        for (int j = 0; j < p->k; j++) {
            int best = j;
            for (int c = j + 1; c < C; c++)
                if (scores[order[c]] > scores[order[best]] ||
                    (scores[order[c]] == scores[order[best]] && order[c] < order[best]))
                    best = c;
            int tmp = order[j];
            order[j] = order[best];
            order[best] = tmp;
            fputc(',', p->csv);
            fl_csv_write_field(p->csv, r->classes[order[j]]);
            fprintf(p->csv, ",%.9g", scores[order[j]]);
        }
        fputc('\n', p->csv);
        p->written++;
    }
    free(scores);
    free(order);
    fl_vote_sums_free(&s);
    return ferror(p->csv) ? fl_fail(err, FL_EIO, "%s: write error", p->out_path) : FL_OK;
}

/* Every chunk: predicted on every rank, gathered and voted on rank 0. */
static fl_code predict_all(predict_ctx *p, fl_error *err)
{
    int64_t chunk = p->rank_rows * p->size;
    int64_t *rows = malloc(sizeof *rows * (size_t)p->size);
    if (!rows)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    fl_code rc = FL_OK;
    for (int64_t c0 = 0; c0 < p->list.n && !rc; c0 += chunk) {
        int64_t n = p->list.n - c0 < chunk ? p->list.n - c0 : chunk, lo, hi;
        for (int q = 0; q < p->size; q++) {
            predict_share(p, c0, n, q, &lo, &hi);
            rows[q] = hi - lo;
        }
        predict_share(p, c0, n, p->rank, &lo, &hi);
        rc = predict_rows(p, lo, hi, err);
        if (!rc && p->group)
            rc = fl_group_gather_rows_of(p->group, p->mine, p->all, rows, (int)p->W, err);
        else if (!rc)
            memcpy(p->all, p->mine, sizeof *p->all * (size_t)(n * p->W));
        if (!rc && p->rank == 0)
            rc = predict_vote(p, c0, n, err);
    }
    free(rows);
    return rc;
}

/* The output: checked against the run's and INPUT's files, then opened. */
static fl_code predict_open_out(predict_ctx *p, fl_error *err)
{
    if (p->o.out && !strcmp(p->o.out, "-")) {
        p->csv = stdout;
        return FL_OK;
    }
    char def[4200];
    const char *out = p->o.out;
    if (!out) {
        snprintf(def, sizeof def, "%s/ensemble", p->run.dir);
        fl_code rc = fl_mkdir_p(def, err);
        if (rc)
            return rc;
        snprintf(def, sizeof def, "%s/ensemble/predictions.csv", p->run.dir);
        out = def;
    }
    char *inputs[FL_MAX_MODELS * FL_MAX_FOLDS * 4 + 3];
    int n = fl_run_inputs(&p->run, inputs, (int)(sizeof inputs / sizeof *inputs) - 1);
    inputs[n++] = strdup(p->o.input);
    fl_code rc = fl_outpath_check("--out", out, inputs, n, p->out_path, sizeof p->out_path, err);
    fl_run_free_paths(inputs, n);
    /* an existing file among the images (a folder or CSV input) */
    if (!rc && p->list.files && access(out, F_OK) == 0 &&
        fl_outpath_is_input(out, p->list.files, (int)(p->list.n < 1000000000 ? p->list.n : 1000000000)))
        rc = fl_fail(err, FL_EUSAGE, "--out %s: is one of the images INPUT lists HINT: give another output path", out);
    if (rc || p->rank != 0)
        return rc;
    if ((rc = fl_tempfile_begin(&p->tmp, p->out_path, 1, err)))
        return rc;
    p->have_tmp = 1;
    if (!(p->csv = fopen(p->tmp.tmp_path, "w"))) {
        rc = fl_tempfile_close_stream(&p->tmp, NULL, 1, err);
        p->have_tmp = 0;
    }
    return rc;
}

/* Everything before the predictions; every rank does it alone. */
static fl_code predict_setup(predict_ctx *p, fl_error *err)
{
    const predict_opts *o = &p->o;
    fl_code rc = fl_run_open(o->run_dir, o->models, o->method, &p->run, err);
    if (!rc)
        rc = fl_image_list_open(o->input, &p->list, err);
    for (int m = 0; !rc && p->list.kind == FL_INPUT_DATAFILE && m < p->run.n_models; m++) {
        const fl_run_model *rm = &p->run.models[m];
        rc = fl_image_list_read(&p->list, 0, 0, rm->channels, rm->height, rm->width, NULL, NULL, NULL, err);
        if (rc)
            fl_error_prefix(err, "model %s", rm->name);
    }
    if (rc)
        return rc;
    p->k = o->topk < 0 ? 5 : (int)o->topk;
    p->k = p->k < p->run.num_classes ? p->k : p->run.num_classes;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = fl_cores_available();
    if (threads < 1 || (cores > 0 && threads >= cores)) /* not bound: share the host's cores */
        threads = (int)((cores > 0 ? cores : 1) / (p->world.local_size > 0 ? p->world.local_size : 1));
    if (o->threads > 0)
        threads = (int)o->threads;
    if ((rc = fl_torch_set_threads(threads < 1 ? 1 : threads, err)) || (rc = fl_torch_keep_freed_memory(err)) ||
        (rc = predict_open_out(p, err)) || (rc = fl_predictor_new(&p->run, o->device, &p->pred, err)))
        return rc;
    return predict_plan(p, err);
}

static void predict_free(predict_ctx *p)
{
    if (p->have_tmp) {
        if (p->csv)
            fclose(p->csv);
        fl_tempfile_abort(&p->tmp);
    }
    fl_predictor_free(p->pred);
    fl_image_list_free(&p->list);
    fl_run_free(&p->run);
    for (int s = 0; s < FL_MAX_MODELS; s++)
        free(p->images[s]);
    free(p->bad);
    free(p->bad_err);
    free(p->mine);
    free(p->all);
}

/* After the setup: every rank passed, or one prints (as train does). */
static int predict_agree(predict_ctx *p, fl_code rc, fl_error *err, int *status)
{
    if (!p->group)
        return rc ? (*status = cli_report(err), 1) : 0;
    int first = 0, n_failed = 0;
    fl_error agree_err;
    if (fl_world_agree(&p->world, rc != FL_OK, &first, &n_failed, &agree_err))
        return *status = cli_report(rc ? err : &agree_err), 1;
    if (!n_failed)
        return 0;
    fl_world w = p->world;
    if (n_failed == w.size ? !fl_world_reports(&w) : w.rank != first) {
        fl_world_end();
        *status = rc ? fl_exit_status(rc) : 1;
        return 1;
    }
    if (n_failed < w.size)
        fl_error_prefix(err, "rank %d of %d (%s)", w.rank, w.size, w.host);
    *status = cli_report(err);
    return 1;
}

int cli_predict(int argc, char **argv)
{
    fl_error err;
    fl_error_clear(&err);
    predict_ctx *p = calloc(1, sizeof *p);
    if (!p)
        return fl_fail(&err, FL_ENOMEM, "out of memory"), cli_report(&err);
    int r = predict_parse(argc, argv, &p->o, &err), status = 0;
    if (r) {
        free(p);
        return r > 0 ? 0 : cli_report(&err);
    }
    fl_tempfile_install_signal_cleanup();
    p->size = 1;
    p->world.size = p->world.local_size = 1;
    fl_code rc = FL_OK;
    if (fl_world_launched()) {
        if (!(rc = fl_world_start(&p->world, &err)) && !(rc = fl_world_check_launch(&p->world, &err)) &&
            !(rc = fl_group_open(&p->world, p->world.size, &p->group, &err))) {
            p->rank = fl_group_rank(p->group);
            p->size = fl_group_size(p->group);
        }
        if (rc) {
            free(p);
            return cli_report(&err);
        }
    }
    rc = predict_setup(p, &err);
    if (predict_agree(p, rc, &err, &status)) {
        predict_free(p);
        free(p);
        return status;
    }
    rc = predict_all(p, &err);
    if (!rc && p->rank == 0 && !p->header_done)
        predict_header(p);
    if (!rc && p->rank == 0 && p->csv == stdout && fflush(stdout) != 0)
        rc = fl_fail(&err, FL_EIO, "stdout: write error");
    if (!rc && p->have_tmp) {
        p->have_tmp = 0;
        rc = fl_tempfile_close_stream(&p->tmp, p->csv, 0, &err);
    }
    if (!rc && p->rank == 0)
        fprintf(stderr, "predict: weights %s\n", p->run.weights_line);
    if (!rc && p->rank == 0)
        fprintf(stderr, "predict: %lld image%s with %d model%s x %d fold%s (%s), %lld skipped%s%s\n",
                (long long)p->written, p->written == 1 ? "" : "s", p->run.n_models, p->run.n_models == 1 ? "" : "s",
                p->run.man.n_folds, p->run.man.n_folds == 1 ? "" : "s", p->run.method, (long long)p->skipped,
                p->csv == stdout ? "" : "; wrote ", p->csv == stdout ? "" : p->out_path);
    predict_free(p);
    if (rc) {
        free(p);
        return cli_report(&err);
    }
    if (p->group)
        fl_group_close(p->group);
    free(p);
    fl_world_end();
    return 0;
}
