/*
 * lensdiff_mpi: posterior chains split across MPI ranks from C.
 *
 *   mpirun -n 4 ./lensdiff_mpi OUTDIR [split|hmc|joint|joint-model FILE|model FILE]
 *
 * Every rank builds the same problem (48x48 pixels of 1', default prior,
 * uniform noise 0.05, a Gaussian field simulated with seed 7) and calls the
 * collective lensdiff_sampler_run_mpi with its communicator as a Fortran
 * handle (MPI_Comm_c2f). Rank 0 writes OUTDIR/mean.f32, std.f32 and
 * samples.f32 (raw little-endian float32) and work.txt (NFE per chain and the
 * inner CG iterations of all chains of all ranks). With "hmc", the sampler is
 * annealed HMC and rank 0 also writes acceptance.f64 (per chain, float64).
 * With "split", MPI_COMM_WORLD is
 * split into two halves (even and odd ranks) that sample independently, and
 * rank 0 of each half writes OUTDIR/half<colour>_mean.f32 etc.
 *
 * With "joint" the chains sample the cosmological parameters (omega_c,
 * sigma8) jointly with the map: the exact Gaussian joint prior of the default
 * cosmology with priors N(0.3, 0.05^2) and N(0.8, 0.05^2), EDM with 16 levels;
 * with "joint-model FILE", the learned joint prior of FILE (a `lensdiff train
 * --joint` model), read by rank 0 and broadcast to every rank as a buffer;
 * with "model FILE", the map sampler under the learned prior of FILE (a
 * `lensdiff train` model of 1' pixels), read by rank 0 and broadcast the same way.
 * Rank 0 also writes OUTDIR/theta.f64 ([chains][2] float64).
 *
 * The host program owns MPI: lensdiff never initialises or finalises it.
 */
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lensdiff.h"

#define N 48

static int check(lensdiff_status st, const char *what) {
    if (st != LENSDIFF_STATUS_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, lensdiff_status_name(st), lensdiff_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return 0;
}

static FILE *open_out(const char *dir, const char *prefix, const char *name, const char *mode) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s%s", dir, prefix, name);
    FILE *f = fopen(path, mode);
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return f;
}

static void write_raw(const char *dir, const char *prefix, const char *name, const void *x, size_t size, size_t n) {
    FILE *f = open_out(dir, prefix, name, "wb");
    if (fwrite(x, size, n, f) != n) {
        fprintf(stderr, "cannot write %s%s\n", prefix, name);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    fclose(f);
}

/* Rank 0 reads `path`; every rank of `comm` gets its bytes (free them). */
static unsigned char *bcast_file(const char *path, MPI_Comm comm, int rank, size_t *len) {
    long n = 0;
    unsigned char *bytes = NULL;
    if (rank == 0) {
        FILE *f = fopen(path, "rb");
        if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) {
            fprintf(stderr, "cannot read %s\n", path);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        if (n > INT_MAX) { /* one MPI_Bcast takes an int count */
            fprintf(stderr, "%s: over INT_MAX bytes\n", path);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        bytes = malloc((size_t)n);
        if (!bytes || fread(bytes, 1, (size_t)n, f) != (size_t)n) {
            fprintf(stderr, "cannot read %s\n", path);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        fclose(f);
    }
    MPI_Bcast(&n, 1, MPI_LONG, 0, comm);
    if (rank != 0) bytes = malloc((size_t)n);
    if (!bytes) {
        fprintf(stderr, "out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Bcast(bytes, (int)n, MPI_UNSIGNED_CHAR, 0, comm);
    *len = (size_t)n;
    return bytes;
}

int main(int argc, char **argv) {
    int provided, world_rank, rank, size, split = argc > 2 && strcmp(argv[2], "split") == 0;
    int hmc = argc > 2 && strcmp(argv[2], "hmc") == 0;
    int joint = argc > 2 && strcmp(argv[2], "joint") == 0;
    const char *model = argc > 3 && strcmp(argv[2], "joint-model") == 0 ? argv[3] : NULL;
    const char *map_model = argc > 3 && strcmp(argv[2], "model") == 0 ? argv[3] : NULL;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    if (argc < 2 || (argc > 2 && strcmp(argv[2], "joint-model") == 0 && !model) ||
        (argc > 2 && strcmp(argv[2], "model") == 0 && !map_model)) {
        fprintf(stderr, "usage: %s OUTDIR [split|hmc|joint|joint-model FILE|model FILE]\n", argv[0]);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm comm = MPI_COMM_WORLD;
    int colour = 0;
    if (split) {
        colour = world_rank % 2;
        MPI_Comm_split(MPI_COMM_WORLD, colour, world_rank, &comm);
    }
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);

    size_t len = (size_t)N * N, chains = 0;
    float *kappa = malloc(len * sizeof *kappa), *mean = malloc(len * sizeof *mean), *std = malloc(len * sizeof *std);
    lensdiff_problem *p = NULL;
    lensdiff_sampler *s = NULL;
    lensdiff_sampler_config cfg;
    check(lensdiff_problem_create(N, N, 1.0, &p), "create");
    check(lensdiff_problem_set_prior_default(p), "prior");
    check(lensdiff_problem_set_noise_uniform(p, 0.05), "noise");
    check(lensdiff_problem_simulate(p, LENSDIFF_FIELD_GAUSSIAN, 0.0, 0.3, 30.0, 7, kappa, len), "simulate");
    check(lensdiff_sampler_config_init(&cfg), "config");
    cfg.chains = 20;
    cfg.batch = 4;
    cfg.levels = 16;
    cfg.seed = 3;
    if (hmc) cfg.sampler = LENSDIFF_SAMPLER_ANNEALED_HMC;
    if (joint || model) {
        if (joint) {
            lensdiff_cosmology cosmo;
            const double mean0[2] = {0.3, 0.8}, std0[2] = {0.05, 0.05};
            check(lensdiff_cosmology_init(&cosmo), "cosmology");
            check(lensdiff_problem_set_joint_prior_cosmology(p, &cosmo, "omega_c,sigma8", mean0, std0, 2),
                  "joint prior");
        } else {
            /* rank 0 reads the model; every rank loads it from the broadcast bytes */
            size_t n = 0;
            unsigned char *bytes = bcast_file(model, comm, rank, &n);
            check(lensdiff_problem_load_joint_model_buffer(p, bytes, n, NULL), "joint model");
            free(bytes);
        }
        check(lensdiff_joint_sampler_config_init(&cfg), "joint config");
        cfg.chains = 20;
        cfg.batch = 4;
        cfg.levels = 16;
        cfg.seed = 3;
        check(lensdiff_joint_sampler_create(p, &cfg, &s), "joint sampler");
    } else {
        if (map_model) {
            /* the learned map prior, from the bytes rank 0 broadcast */
            size_t n = 0;
            unsigned char *bytes = bcast_file(map_model, comm, rank, &n);
            check(lensdiff_problem_load_model_buffer(p, bytes, n), "model");
            free(bytes);
        }
        check(lensdiff_sampler_create(p, &cfg, &s), "sampler");
    }
    check(lensdiff_sampler_run_mpi(s, (int32_t)MPI_Comm_c2f(comm), 1), "run_mpi");
    int32_t node_rank = -1, node_size = -1;
    check(lensdiff_mpi_node_rank((int32_t)MPI_Comm_c2f(comm), &node_rank, &node_size), "node_rank");
    printf("rank %d: node rank %d of %d\n", rank, (int)node_rank, (int)node_size);
    check(lensdiff_sampler_mean(s, mean, len), "mean");
    check(lensdiff_sampler_std(s, std, len), "std");
    check(lensdiff_sampler_chains(s, &chains), "chains");
    if (rank == 0) {
        char prefix[32] = "";
        if (split) snprintf(prefix, sizeof prefix, "half%d_", colour);
        float *samples = malloc(chains * len * sizeof *samples);
        check(lensdiff_sampler_samples(s, samples, chains * len), "samples");
        write_raw(argv[1], prefix, "mean.f32", mean, sizeof *mean, len);
        write_raw(argv[1], prefix, "std.f32", std, sizeof *std, len);
        write_raw(argv[1], prefix, "samples.f32", samples, sizeof *samples, chains * len);
        uint64_t nfe = 0, inner = 0;
        check(lensdiff_sampler_stats(s, &nfe, NULL), "stats");
        check(lensdiff_sampler_inner_iterations(s, &inner), "inner_iterations");
        FILE *w = open_out(argv[1], prefix, "work.txt", "w");
        fprintf(w, "%llu %llu\n", (unsigned long long)nfe, (unsigned long long)inner);
        fclose(w);
        if (joint || model) {
            size_t np = 0;
            check(lensdiff_sampler_params(s, &np), "params");
            double *theta = malloc(chains * np * sizeof *theta);
            check(lensdiff_sampler_theta(s, theta, chains * np), "theta");
            write_raw(argv[1], prefix, "theta.f64", theta, sizeof *theta, chains * np);
            free(theta);
        }
        if (hmc) {
            double *acc = malloc(chains * sizeof *acc);
            check(lensdiff_sampler_acceptance(s, acc, chains), "acceptance");
            write_raw(argv[1], prefix, "acceptance.f64", acc, sizeof *acc, chains);
            free(acc);
        }
        printf("lensdiff %s: %d rank(s)%s, %zu chains gathered on rank 0\n", lensdiff_version_string(), size,
               split ? " per half" : "", chains);
        free(samples);
    }
    lensdiff_sampler_destroy(s);
    lensdiff_problem_destroy(p);
    free(kappa);
    free(mean);
    free(std);
    if (split) MPI_Comm_free(&comm);
    MPI_Finalize();
    return 0;
}
