/* joblock.h -- run locks: one trainer per job, across processes and hosts.
 *
 * Two trainers of the same job at once would both write its checkpoints,
 * metrics and predictions: a resubmitted sbatch while the first still runs,
 * two SLURM array tasks for one fold, `--fold 2` started twice, on one host
 * or on hosts sharing the run directory over NFS (where flock may not work).
 * So before a job (model m, fold k) is trained its group leader takes the
 * lock RUN_DIR/<model>/fold<k>/lock, and removes it when the job ends.
 *
 * The lock is a small text file (host, boot id, pid namespace, pid, the
 * process's start time, since when), written completely under a unique name
 * beside it and then hard-linked to `lock` (link fails if `lock` exists; the
 * way open(2) recommends for NFS, where it is atomic as O_EXCL is). Its
 * modification time is the heartbeat: a thread of the holder sets it to the
 * holder's clock every FL_JOBLOCK_HEARTBEAT_S seconds.
 *
 * A lock is stale, and taken over, when its holder on this host (same host
 * name, boot id and pid namespace) is gone (no such pid, a zombie, or a pid
 * now used by a process with another start time), or, for a holder elsewhere,
 * when its heartbeat is older than dist.lock_timeout_s (hosts' clocks must
 * agree to well within that, as NTP keeps them). joblock.c says why the
 * takeover is race-free.
 */
#ifndef FOLDLINE_JOBLOCK_H
#define FOLDLINE_JOBLOCK_H

#include <stddef.h>

#include "base/error.h"

#define FL_JOBLOCK_NAME        "lock"
#define FL_JOBLOCK_HEARTBEAT_S 2   /* seconds between heartbeats */
#define FL_JOBLOCK_TIMEOUT_MIN 5.0 /* the least dist.lock_timeout_s: two heartbeats may be late */

typedef struct fl_joblock fl_joblock;

/* What fl_joblock_open or fl_joblock_inspect found. */
typedef struct {
    int held;      /* 1: a live holder has the lock (fl_joblock_open: the caller did not get it) */
    int took_over; /* 1: the caller got the lock by taking over a stale one */
    /* held: "host n3 pid 4711 since 2026-12-03 09:12:04 (heartbeat 2 s ago)";
     * took_over: "host n3 pid 4711 (heartbeat 75 s old, process gone)" */
    char who[512];
    char path[4200]; /* the lock file */
} fl_joblock_outcome;

/* Takes the lock of job directory dir (which must exist), taking over a
 * stale one. *lock is the held lock (heartbeat running), or NULL when a live
 * holder has it (out->held, out->who names it; nothing is written then).
 * Fails (FL_EIO, FL_EINPUT for a `lock` foldline did not write) naming the
 * file. */
fl_code fl_joblock_open(const char *dir, double timeout_s, fl_joblock **lock, fl_joblock_outcome *out, fl_error *err);

/* Sets the heartbeat now (the thread does it every FL_JOBLOCK_HEARTBEAT_S). */
fl_code fl_joblock_refresh(fl_joblock *lock, fl_error *err);

/* 1 when another trainer took the lock over while this one held it (this
 * one was stopped or cut off for longer than dist.lock_timeout_s). */
int fl_joblock_lost(const fl_joblock *lock);

/* Stops the heartbeat and removes the lock (NULL: nothing). Fails when the
 * lock was taken over meanwhile (then it leaves the new holder's alone), or
 * on an I/O error; the lock is freed either way. */
fl_code fl_joblock_release(fl_joblock *lock, fl_error *err);

/* Whether a live holder has the lock of job directory dir (out->held,
 * out->who), without taking it: --restart's check. No lock, or a stale one,
 * is out->held = 0. */
fl_code fl_joblock_inspect(const char *dir, double timeout_s, fl_joblock_outcome *out, fl_error *err);

/* The first job directory RUN_DIR/<model>/fold<k> whose lock a live holder
 * has (out->held, out->path); out->held = 0 when none. */
fl_code fl_joblock_find_held(const char *run_dir, double timeout_s, fl_joblock_outcome *out, fl_error *err);

#endif
