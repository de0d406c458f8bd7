/* joblock.c -- see joblock.h.
 *
 * Names in a job directory DIR:
 *   DIR/lock                  the lock: a hard link to the holder's own file
 *   DIR/lock.<host>.<pid>.<n> the holder's own file (the lock's `file` line
 *                             names it); written completely, fsynced, then
 *                             linked to DIR/lock
 *   DIR/lock.<...>.end, DIR/lock.stale.<host>.<pid>.<n>
 *                             a claimed own file, for the moment it takes to
 *                             remove DIR/lock
 *
 * Why the takeover is race-free. The name DIR/lock is created only by
 * link(), which fails when it exists, so of several takers that saw no lock
 * exactly one gets it. It is removed only by whoever first renames away the
 * own file U that the lock's content names: the holder when it releases, or
 * a taker that judged the lock stale. rename(U, C) succeeds for exactly one
 * of them (U names one file only, and after the rename it names none); the
 * others get ENOENT and look again. So while U exists nobody removes
 * DIR/lock, and the one that claimed U knows DIR/lock is still the file it
 * inspected (it checks that C is that inode) and removes exactly that file,
 * never a newer lock: the hazard of "inspect, then unlink" (another taker
 * replaced the stale lock between the two) cannot happen. The takers that
 * lost find either the winner's fresh lock (held: they skip the job) or none
 * (then link() decides again). A holder judged stale while alive (stopped,
 * or cut off from the filesystem for longer than the timeout) finds U gone:
 * its heartbeat marks the lock lost, and its release leaves the new holder's
 * lock alone.
 *
 * On NFS link() and rename() are atomic at the server; a reply lost and
 * retried can report failure for a call that succeeded, so the link count of
 * the own file (2: linked) and the inode of the claimed name are what decide.
 * A lock whose own file is gone for seconds (its claimer died between two
 * system calls) cannot be claimed safely: it is an error with a HINT.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_NOFOLLOW, readlink, strtok_r */
#endif
#include "trainer/joblock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"

typedef struct {
    char file[256]; /* the holder's own file, a name in the job directory */
    char host[256];
    char boot_id[64];
    char pid_ns[64];
    long pid;
    unsigned long long start; /* the process's start time: clock ticks after boot (/proc/PID/stat field 22) */
    long long since;          /* seconds since the epoch */
} lock_info;

struct fl_joblock {
    char path[4200]; /* DIR/lock */
    char own[4200];  /* DIR/lock.<host>.<pid>.<n> */
    int fd;          /* on own: the heartbeat sets its modification time */
    int linked;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    atomic_int lost;
};

/* Field 3 (state) and 22 (start time) of /proc/PID/stat; -1 if there is none. */
static int proc_stat(long pid, char *state, unsigned long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')'), *save = NULL; /* the command name may hold spaces and ')' */
    if (!p)
        return -1;
    int field = 3;
    for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
        if (field == 3)
            *state = tok[0];
        if (field == 22) {
            *start = strtoull(tok, NULL, 10);
            return 0;
        }
    }
    return -1;
}

static void read_line_file(const char *path, char *out, size_t n)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (!fgets(out, (int)n, f))
        out[0] = 0;
    fclose(f);
    out[strcspn(out, "\n")] = 0;
}

/* This process, as a lock names its holder. */
static void self_info(lock_info *in)
{
    memset(in, 0, sizeof *in);
    if (gethostname(in->host, sizeof in->host - 1) != 0 || !in->host[0])
        strcpy(in->host, "unknown");
    read_line_file("/proc/sys/kernel/random/boot_id", in->boot_id, sizeof in->boot_id);
    ssize_t n = readlink("/proc/self/ns/pid", in->pid_ns, sizeof in->pid_ns - 1);
    in->pid_ns[n > 0 ? n : 0] = 0;
    in->pid = (long)getpid();
    char state;
    if (proc_stat(in->pid, &state, &in->start) != 0)
        in->start = 0;
    in->since = (long long)time(NULL);
}

/* A unique name beside the lock: PREFIX.<host>.<pid>.<8 hex digits>. */
static void unique_name(char *buf, size_t n, const char *dir, const char *prefix, const lock_info *me)
{
    static atomic_uint counter;
    char host[64];
    snprintf(host, sizeof host, "%s", me->host);
    for (char *c = host; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-'))
            *c = '_';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned x = (unsigned)ts.tv_nsec ^ ((unsigned)me->pid << 16) ^ (atomic_fetch_add(&counter, 1) * 2654435761u);
    snprintf(buf, n, "%s/%s.%s.%ld.%08x", dir, prefix, host, me->pid, x);
}

/* Reads the lock at path: *absent when there is none; FL_EINPUT when it is
 * not one foldline wrote. st: the lock's inode and heartbeat (mtime). */
static fl_code lock_read(const char *path, lock_info *in, struct stat *st, int *absent, fl_error *err)
{
    memset(in, 0, sizeof *in);
    *absent = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            *absent = 1;
            return FL_OK;
        }
        return fl_fail(err, errno == ELOOP ? FL_EINPUT : FL_EIO, "%s: cannot read the job's lock: %s", path,
                       strerror(errno));
    }
    char buf[4096];
    ssize_t n = fstat(fd, st) == 0 ? read(fd, buf, sizeof buf - 1) : -1;
    int e = errno;
    close(fd);
    if (n < 0)
        return fl_fail(err, FL_EIO, "%s: cannot read the job's lock: %s", path, strerror(e));
    buf[n] = 0;
    int have = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *v = strchr(line, ' ');
        if (line[0] == '#' || !v)
            continue;
        *v++ = 0;
        if (!strcmp(line, "file"))
            have |= 1, snprintf(in->file, sizeof in->file, "%s", v);
        else if (!strcmp(line, "host"))
            have |= 2, snprintf(in->host, sizeof in->host, "%s", v);
        else if (!strcmp(line, "pid"))
            have |= 4, in->pid = strtol(v, NULL, 10);
        else if (!strcmp(line, "start"))
            have |= 8, in->start = strtoull(v, NULL, 10);
        else if (!strcmp(line, "since"))
            have |= 16, in->since = strtoll(v, NULL, 10);
        else if (!strcmp(line, "boot_id"))
            snprintf(in->boot_id, sizeof in->boot_id, "%s", v);
        else if (!strcmp(line, "pid_ns"))
            snprintf(in->pid_ns, sizeof in->pid_ns, "%s", v);
    }
    if (have != 31 || strncmp(in->file, FL_JOBLOCK_NAME ".", strlen(FL_JOBLOCK_NAME) + 1) || strchr(in->file, '/') ||
        in->pid <= 0)
        return fl_fail(err, FL_EINPUT,
                       "%s: not a lock foldline wrote (no host, pid, start, since and file lines) HINT: remove it if "
                       "no foldline trains this job",
                       path);
    return FL_OK;
}

static double lock_age(const struct stat *st)
{
    double age = fl_clock_wall() - (st->st_mtim.tv_sec + st->st_mtim.tv_nsec * 1e-9);
    return age > 0 ? age : 0; /* a clock a little ahead: as fresh */
}

/* 1 when the holder in `in` is alive; else 0 with why (dead, pid reused,
 * heartbeat too old). */
static int lock_live(const lock_info *in, const struct stat *st, double timeout_s, char *why, size_t n)
{
    lock_info me;
    self_info(&me);
    double age = lock_age(st);
    if (!strcmp(in->host, me.host) && !strcmp(in->boot_id, me.boot_id) && !strcmp(in->pid_ns, me.pid_ns)) {
        char state = 0;
        unsigned long long start = 0;
        if ((kill((pid_t)in->pid, 0) != 0 && errno == ESRCH) || proc_stat(in->pid, &state, &start) != 0 ||
            state == 'Z' || state == 'X') {
            snprintf(why, n, "dead");
            return 0;
        }
        if (start != in->start) {
            snprintf(why, n, "dead, its pid now another process's");
            return 0;
        }
        return 1; /* alive here, even if stopped: it may go on */
    }
    if (age > timeout_s) {
        snprintf(why, n, "older than dist.lock_timeout_s = %g s", timeout_s);
        return 0;
    }
    return 1;
}

static void describe_held(const lock_info *in, const struct stat *st, char *buf, size_t n)
{
    char since[32] = "?";
    time_t t = (time_t)in->since;
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(since, sizeof since, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf, n, "host %s pid %ld since %s (heartbeat %.0f s ago)", in->host, in->pid, since, lock_age(st));
}

static void fsync_dir_of(const char *path)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* The holder's own file, complete and fsynced, not yet linked. */
static fl_code own_create(const char *dir, fl_joblock **out, fl_error *err)
{
    fl_joblock *l = calloc(1, sizeof *l);
    if (!l)
        return fl_fail(err, FL_ENOMEM, "out of memory");
    lock_info me;
    self_info(&me);
    snprintf(l->path, sizeof l->path, "%s/%s", dir, FL_JOBLOCK_NAME);
    l->fd = -1;
    for (int i = 0; i < 16 && l->fd < 0; i++) {
        unique_name(l->own, sizeof l->own, dir, FL_JOBLOCK_NAME, &me);
        l->fd = open(l->own, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (l->fd < 0 && errno != EEXIST)
            break;
    }
    if (l->fd < 0) {
        fl_code rc = fl_fail(err, FL_EIO, "%s: cannot create the job's lock: %s", l->own, strerror(errno));
        free(l);
        return rc;
    }
    char text[1024];
    int len = snprintf(text, sizeof text,
                       "# foldline job lock: this job trains in the process below; its heartbeat is this file's\n"
                       "# modification time, set every %d s. Remove it only if that process is gone.\n"
                       "file %s\nhost %s\nboot_id %s\npid_ns %s\npid %ld\nstart %llu\nsince %lld\n",
                       FL_JOBLOCK_HEARTBEAT_S, strrchr(l->own, '/') + 1, me.host, me.boot_id, me.pid_ns, me.pid,
                       me.start, me.since);
    if (write(l->fd, text, (size_t)len) != len || fsync(l->fd) != 0) {
        fl_fail(err, FL_EIO, "%s: cannot write the job's lock: %s", l->own, strerror(errno ? errno : EIO));
        close(l->fd);
        unlink(l->own);
        free(l);
        return FL_EIO;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    *out = l;
    return FL_OK;
}

/* Frees a lock: the own file is removed unless it is linked (held). */
static void own_free(fl_joblock *l)
{
    if (!l)
        return;
    if (!l->linked)
        unlink(l->own);
    close(l->fd);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* link(own, lock): 1 linked, 0 a lock exists, -1 failed (errno). */
static int own_link(fl_joblock *l)
{
    if (link(l->own, l->path) == 0)
        return 1;
    int e = errno;
    struct stat st;
    if (fstat(l->fd, &st) == 0 && st.st_nlink == 2) /* NFS: the link succeeded, its reply was lost */
        return 1;
    errno = e;
    return e == EEXIST ? 0 : -1;
}

/* Claims the stale lock (inspected: in, st) by renaming its own file away,
 * then removes it: 1 done, 0 someone else claimed it first, FL error < 0. */
static int lock_claim(const char *dir, const char *path, const lock_info *in, const struct stat *st, fl_error *err)
{
    char u[4200], c[4200];
    lock_info me;
    self_info(&me);
    snprintf(u, sizeof u, "%s/%s", dir, in->file);
    unique_name(c, sizeof c, dir, FL_JOBLOCK_NAME ".stale", &me);
    struct stat cs;
    if (rename(u, c) != 0) {
        int e = errno;
        if (!(e == ENOENT && stat(c, &cs) == 0 && cs.st_ino == st->st_ino)) { /* NFS: a lost reply */
            if (e == ENOENT)
                return 0;
            fl_fail(err, FL_EIO, "%s: cannot take over the stale lock: %s", u, strerror(e));
            return -1;
        }
    }
    if (stat(c, &cs) != 0 || cs.st_ino != st->st_ino || cs.st_dev != st->st_dev) {
        rename(c, u); /* not the lock's file: put it back */
        fl_fail(err, FL_EINPUT,
                "%s: names %s as its file, which is another file HINT: remove both if no foldline trains this job",
                path, u);
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        fl_fail(err, FL_EIO, "%s: cannot remove the stale lock: %s", path, strerror(errno));
        return -1;
    }
    unlink(c);
    fsync_dir_of(path);
    return 1;
}

/* One heartbeat: the lock's modification time to now; marks it lost when its
 * own file was claimed by a taker. */
static int lock_beat(fl_joblock *l)
{
    struct timespec now[2];
    clock_gettime(CLOCK_REALTIME, &now[0]);
    now[1] = now[0];
    int rc = futimens(l->fd, now);
    int e = errno;
    struct stat st;
    if (stat(l->own, &st) != 0 && errno == ENOENT)
        atomic_store(&l->lost, 1);
    errno = e;
    return rc;
}

/* The heartbeat thread: no MPI, no signals (they go to the main thread). */
static void *heartbeat_main(void *arg)
{
    fl_joblock *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += FL_JOBLOCK_HEARTBEAT_S;
        while (!l->stop && pthread_cond_timedwait(&l->cv, &l->mu, &dl) != ETIMEDOUT)
            ;
        if (l->stop)
            break;
        pthread_mutex_unlock(&l->mu);
        lock_beat(l);
        pthread_mutex_lock(&l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static fl_code heartbeat_start(fl_joblock *l, fl_error *err)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits a mask blocking every signal */
    int rc = pthread_create(&l->thread, NULL, heartbeat_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return fl_fail(err, FL_EIO, "%s: cannot start the lock's heartbeat thread: %s", l->path, strerror(rc));
    l->thread_started = 1;
    return FL_OK;
}

fl_code fl_joblock_open(const char *dir, double timeout_s, fl_joblock **lock, fl_joblock_outcome *out, fl_error *err)
{
    *lock = NULL;
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s/%s", dir, FL_JOBLOCK_NAME);
    fl_joblock *l = NULL;
    fl_code rc = FL_OK;
    ino_t orphan = 0;
    double orphan_since = 0;
    for (int round = 0;; round++) {
        lock_info in;
        struct stat st;
        int absent;
        if (round > 100000) {
            rc = fl_fail(err, FL_EIO, "%s: the lock keeps changing; cannot take it", out->path);
            goto fail;
        }
        if ((rc = lock_read(out->path, &in, &st, &absent, err)))
            goto fail;
        if (absent) {
            if (!l && (rc = own_create(dir, &l, err)))
                goto fail;
            int r = own_link(l);
            if (r < 0) {
                rc = fl_fail(err, FL_EIO, "%s: cannot create the job's lock: %s", out->path, strerror(errno));
                goto fail;
            }
            if (r == 0)
                continue; /* another trainer made one first: look at it */
            l->linked = 1;
            break;
        }
        char why[128];
        if (lock_live(&in, &st, timeout_s, why, sizeof why)) {
            out->held = 1;
            out->took_over = 0;
            describe_held(&in, &st, out->who, sizeof out->who);
            own_free(l);
            return FL_OK;
        }
        int r = lock_claim(dir, out->path, &in, &st, err);
        if (r < 0) {
            rc = err ? err->code : FL_EIO;
            goto fail;
        }
        if (r > 0) {
            out->took_over = 1;
            snprintf(out->who, sizeof out->who, "host %s pid %ld (heartbeat %.0f s old, %s)", in.host, in.pid,
                     lock_age(&st), why);
            continue;
        }
        /* Its own file is gone: another trainer is removing this lock right now, or died doing so. */
        if (orphan != st.st_ino) {
            orphan = st.st_ino;
            orphan_since = fl_clock_mono();
        } else if (fl_clock_mono() - orphan_since > 3.0) {
            rc = fl_fail(err, FL_EINPUT,
                         "%s: a stale lock (host %s pid %ld) whose file %s is gone HINT: remove %s if no foldline "
                         "trains this job",
                         out->path, in.host, in.pid, in.file, out->path);
            goto fail;
        }
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    fsync_dir_of(l->path);
    if ((rc = heartbeat_start(l, err))) {
        fl_joblock_release(l, NULL); /* held: removed as every lock is */
        return rc;
    }
    *lock = l;
    return FL_OK;
fail:
    own_free(l); /* not linked: only the own file, if any */
    return rc;
}

fl_code fl_joblock_refresh(fl_joblock *lock, fl_error *err)
{
    if (lock && lock_beat(lock) != 0)
        return fl_fail(err, FL_EIO, "%s: cannot refresh the lock's heartbeat: %s", lock->path, strerror(errno));
    return FL_OK;
}

int fl_joblock_lost(const fl_joblock *lock)
{
    return lock && atomic_load(&((fl_joblock *)lock)->lost);
}

fl_code fl_joblock_release(fl_joblock *lock, fl_error *err)
{
    if (!lock)
        return FL_OK;
    if (lock->thread_started) {
        pthread_mutex_lock(&lock->mu);
        lock->stop = 1;
        pthread_cond_signal(&lock->cv);
        pthread_mutex_unlock(&lock->mu);
        pthread_join(lock->thread, NULL);
    }
    char c[4300];
    snprintf(c, sizeof c, "%s.end", lock->own);
    fl_code rc = FL_OK;
    if (rename(lock->own, c) == 0) { /* claimed: DIR/lock is still ours (see the top) */
        if (unlink(lock->path) != 0 && errno != ENOENT)
            rc = fl_fail(err, FL_EIO, "%s: cannot remove the job's lock: %s", lock->path, strerror(errno));
        unlink(c);
        fsync_dir_of(lock->path);
    } else if (errno == ENOENT) {
        rc = fl_fail(err, FL_EIO,
                     "%s: another trainer took this job's lock over while this one trained (this one was stopped "
                     "or cut off from the run directory for longer than dist.lock_timeout_s) HINT: both wrote the "
                     "job's files; rerun with a larger dist.lock_timeout_s if that was a pause",
                     lock->path);
    } else {
        rc = fl_fail(err, FL_EIO, "%s: cannot release the job's lock: %s", lock->own, strerror(errno));
    }
    lock->linked = 1; /* its own file is claimed or gone: own_free must not unlink that name */
    own_free(lock);
    return rc;
}

fl_code fl_joblock_inspect(const char *dir, double timeout_s, fl_joblock_outcome *out, fl_error *err)
{
    memset(out, 0, sizeof *out);
    snprintf(out->path, sizeof out->path, "%s/%s", dir, FL_JOBLOCK_NAME);
    lock_info in;
    struct stat st;
    int absent;
    fl_code rc = lock_read(out->path, &in, &st, &absent, err);
    if (rc || absent)
        return rc;
    char why[128];
    if ((out->held = lock_live(&in, &st, timeout_s, why, sizeof why)))
        describe_held(&in, &st, out->who, sizeof out->who);
    else
        snprintf(out->who, sizeof out->who, "host %s pid %ld (heartbeat %.0f s old, %s)", in.host, in.pid,
                 lock_age(&st), why);
    return FL_OK;
}

static int is_dir(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

fl_code fl_joblock_find_held(const char *run_dir, double timeout_s, fl_joblock_outcome *out, fl_error *err)
{
    memset(out, 0, sizeof *out);
    DIR *top = opendir(run_dir);
    if (!top)
        return errno == ENOENT
                   ? FL_OK
                   : fl_fail(err, FL_EIO, "%s: cannot list the run directory: %s", run_dir, strerror(errno));
    fl_code rc = FL_OK;
    struct dirent *m;
    while (!rc && !out->held && (m = readdir(top))) {
        char model[4200];
        snprintf(model, sizeof model, "%s/%s", run_dir, m->d_name);
        if (m->d_name[0] == '.' || !is_dir(model))
            continue;
        DIR *sub = opendir(model);
        struct dirent *f;
        while (sub && !rc && !out->held && (f = readdir(sub))) {
            char job[4300];
            snprintf(job, sizeof job, "%s/%s", model, f->d_name);
            if (strncmp(f->d_name, "fold", 4) || !is_dir(job))
                continue;
            rc = fl_joblock_inspect(job, timeout_s, out, err);
        }
        if (sub)
            closedir(sub);
    }
    closedir(top);
    if (!rc && !out->held)
        memset(out, 0, sizeof *out);
    return rc;
}
