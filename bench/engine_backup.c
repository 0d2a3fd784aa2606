/*
 * bench/engine_backup.c -- online backup and restore (docs/backup.md):
 *  - backup_mb_per_s: sr_engine_backup of a loaded data directory (a new
 *    set: everything copied) in MB/s of the directory (du), against `cp -a`
 *    of the same directory in the same run (cp_mb_per_s; best of 2 each,
 *    alternated, the engine open and idle); goal ratio >= 0.8; beside it
 *    cp -a then sync -f (cp_sync_s: a copy made durable, as a backup is);
 *  - ingest during backups: the reference data set loaded into a fresh
 *    engine alone (ingest_pts_per_s), then into another while a thread
 *    takes backups back to back into one set (incremental, keep 2)
 *    (ingest_during_pts_per_s, backups_during); goal ratio >= 0.8;
 *  - restore_to_serving_s: sr_backup_restore of the backup into a new
 *    directory (every file checked first, then copied and checked again),
 *    then sr_engine_open and the first latest query answered.
 * Data: the reference set of engbench.h with bench/net_ingest.sh's defaults
 * (2,000 points x 1 hour = 7.2 M values, 1 % late), loaded through
 * sr_engine_submit (not the network), encrypted, zstd.
 * "verify":"ok" when every backup succeeded, the backups' S equals their
 * index watermark, and the restored engine answers every sample sent (count
 * and hash of a full-range query of every point).
 * usage: engine_backup [--points N] [--seconds S] [--dir D]
 */
#include "engbench.h"
#include "engine/backup.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sr_engine *g_e;
static const char *g_set;
static atomic_int g_stop;
static int g_backups, g_failed;

static void *backups_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_stop)) {
        sr_backup_info x;
        sr_errinfo ei;
        sr_backup_opts bo = {.no_event = 1};
        if (sr_engine_backup(g_e, g_set, &bo, &x, &ei)) {
            fprintf(stderr, "engine_backup: backup during ingest: %s\n", ei.msg);
            g_failed++;
            break;
        }
        g_backups++;
        if (x.seq != x.watermark) g_failed++;
        char kp[1200];
        unsigned removed;
        snprintf(kp, sizeof kp, "%s/../eng2/platform-key.pem", g_set);
        if (sr_backup_prune(g_set, kp, 2, &removed, &ei)) g_failed++;
    }
    return NULL;
}

static int platform_key(const char *dir)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '%s/platform-key.pem' 2>/dev/null",
             dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* open dir, masters, ingest d: the result; e stays open in *out when out */
static int load(const eb_cfg *c, eb_data *d, const char *dir, sr_engine **out, eb_ingest_res *ir, int backups)
{
    sr_engine_opts o;
    sr_key key;
    eb_opts(c, &o, &key);
    static sr_key keep_key; /* the engine keeps the pointer */
    keep_key = key;
    o.key = c->enc ? &keep_key : NULL;
    sr_engine *e = NULL;
    sr_errinfo ei;
    if (sr_engine_open(dir, &o, &e, &ei)) {
        fprintf(stderr, "engine_backup: open %s: %s\n", dir, ei.msg);
        return -1;
    }
    if (platform_key(dir) || eb_masters(e, c, d)) return -1;
    pthread_t th;
    if (backups) {
        g_e = e;
        atomic_store(&g_stop, 0);
        if (pthread_create(&th, NULL, backups_main, NULL)) return -1;
    }
    int rc = eb_ingest(e, c, d, ir);
    if (backups) {
        atomic_store(&g_stop, 1);
        pthread_join(th, NULL);
    }
    if (rc || ir->failed) return -1;
    if (out) *out = e;
    else if (sr_engine_close(e)) return -1;
    return 0;
}

int main(int argc, char **argv)
{
    eb_cfg c = {.points = 2000, .seconds = 3600, .batch = 100, .late_bp = 100, .seed = 42, .threads = 1,
                .enc = 1, .zstd = 1, .window = 8192};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int hv = i + 1 < argc;
        if (hv && !strcmp(a, "--points")) c.points = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--seconds")) c.seconds = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (hv && !strcmp(a, "--dir")) c.dir = argv[++i];
        else {
            fprintf(stderr, "usage: engine_backup [--points N] [--seconds S] [--dir D]\n");
            return 2;
        }
    }
    char tmpl[] = "/var/tmp/suiro-backupbench-XXXXXX";
    if (!c.dir) {
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        c.dir = tmpl;
    }
    char dir1[1100], dir2[1100], set1[1100], set2[1100], cpdir[1100], rdir[1100], cmd[4000];
    snprintf(dir1, sizeof dir1, "%s/eng1", c.dir);
    snprintf(dir2, sizeof dir2, "%s/eng2", c.dir);
    snprintf(set1, sizeof set1, "%s/set1", c.dir);
    snprintf(set2, sizeof set2, "%s/set2", c.dir);
    snprintf(cpdir, sizeof cpdir, "%s/cp", c.dir);
    snprintf(rdir, sizeof rdir, "%s/restored", c.dir);
    eb_data d;
    if (eb_generate(&c, &d)) return 1;
    int ok = 1;
    /* 1. ingest alone, then with backups back to back */
    eb_ingest_res alone, during;
    sr_engine *e1 = NULL;
    if (load(&c, &d, dir1, &e1, &alone, 0)) return 1;
    g_set = set2;
    if (load(&c, &d, dir2, NULL, &during, 1)) return 1;
    if (g_failed || !g_backups) ok = 0;
    /* 2. backup against cp -a, the same directory, alternated, best of 2 */
    uint64_t bytes = eb_du(dir1);
    double best_b = 1e30, best_cp = 1e30, best_cps = 1e30;
    sr_backup_info x = {0};
    for (int round = 0; round < 2; round++) {
        eb_rmrf(cpdir);
        snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", dir1, cpdir);
        double t0 = eb_now();
        if (system(cmd) != 0) ok = 0;
        double t = eb_now() - t0;
        best_cp = t < best_cp ? t : best_cp;
        /* and a durable cp: cp -a, then sync -f (the file system holding it: a backup fsyncs what it wrote) */
        eb_rmrf(cpdir);
        snprintf(cmd, sizeof cmd, "cp -a '%s' '%s' && sync -f '%s'", dir1, cpdir, cpdir);
        t0 = eb_now();
        if (system(cmd) != 0) ok = 0;
        t = eb_now() - t0;
        best_cps = t < best_cps ? t : best_cps;
        eb_rmrf(set1);
        sr_errinfo ei;
        sr_backup_opts bo = {.no_event = 1};
        t0 = eb_now();
        if (sr_engine_backup(e1, set1, &bo, &x, &ei)) {
            fprintf(stderr, "engine_backup: backup: %s\n", ei.msg);
            ok = 0;
            break;
        }
        t = eb_now() - t0;
        best_b = t < best_b ? t : best_b;
        if (x.seq != x.watermark || x.files_linked) ok = 0;
    }
    eb_rmrf(cpdir);
    if (sr_engine_close(e1)) ok = 0;
    /* 3. restore to serving */
    char bdir[1300], pk[1200];
    snprintf(bdir, sizeof bdir, "%s/%s", set1, x.name);
    snprintf(pk, sizeof pk, "%s/platform-key.pem", dir1);
    sr_engine_opts o;
    sr_key key;
    eb_opts(&c, &o, &key);
    sr_restore_opts ro = {.key = c.enc ? &key : NULL, .platform_key = pk, .no_event = 1};
    sr_backup_info rx;
    sr_errinfo ei;
    double t0 = eb_now();
    double t_restore = 0, t_serving = 0;
    sr_engine *r = NULL;
    if (sr_backup_restore(bdir, rdir, &ro, &rx, &ei)) {
        fprintf(stderr, "engine_backup: restore: %s\n", ei.msg);
        ok = 0;
    } else {
        t_restore = eb_now() - t0;
        o.key = ro.key;
        if (sr_engine_open(rdir, &o, &r, &ei)) {
            fprintf(stderr, "engine_backup: open the restore: %s\n", ei.msg);
            ok = 0;
        } else {
            uint32_t lp = d.point_no[0];
            sr_sample s;
            int found = 0;
            if (sr_engine_latest(r, &lp, 1, &s, &found, NULL) || !found) ok = 0;
            t_serving = eb_now() - t0;
        }
    }
    uint64_t got = 0, gh = 0;
    if (r) {
        if (eb_verify(r, &c, &d, &got, &gh)) ok = 0;
        if (sr_engine_close(r)) ok = 0;
    }
    ok = ok && got == d.unique && gh == d.hash;
    double bmb = (double)bytes / 1e6 / best_b, cmb = (double)bytes / 1e6 / best_cp;
    double ia = (double)d.sent / alone.secs, id = (double)d.sent / during.secs;
    printf("{\"bench\":\"engine_backup\",\"points\":%u,\"seconds\":%u,\"enc\":%d,\"zstd\":%d,\"dir_bytes\":%" PRIu64
           ",\"files\":%u,\"backup_s\":%.3f,\"backup_mb_per_s\":%.1f,\"cp_s\":%.3f,\"cp_mb_per_s\":%.1f,"
           "\"backup_vs_cp\":%.2f,\"cp_sync_s\":%.3f,\"backup_vs_cp_sync\":%.2f,\"ingest_pts_per_s\":%.0f,\"ingest_during_pts_per_s\":%.0f,\"backups_during\":%d,"
           "\"ingest_during_vs_alone\":%.2f,\"restore_s\":%.3f,\"restore_to_serving_s\":%.3f,\"verify\":\"%s\"}\n",
           c.points, c.seconds, c.enc, c.zstd, bytes, x.files, best_b, bmb, best_cp, cmb, bmb / cmb, best_cps, best_cps / best_b, ia, id, g_backups,
           id / ia, t_restore, t_serving, ok ? "ok" : "FAILED");
    fflush(stdout);
    if (!ok) fprintf(stderr, "engine_backup: verify: %" PRIu64 " of %" PRIu64 " samples\n", got, d.unique);
    eb_data_free(&d);
    eb_rmrf(dir1);
    eb_rmrf(dir2);
    eb_rmrf(set1);
    eb_rmrf(set2);
    eb_rmrf(rdir);
    if (c.dir == tmpl) rmdir(tmpl);
    return ok ? 0 : 1;
}
