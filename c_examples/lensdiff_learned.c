/*
 * lensdiff C ABI example with the learned prior: simulate a log-normal
 * convergence field and its noisy shear, load a trained U-Net prior (the
 * built-in demo model, or a model file), describe it, and draw posterior
 * samples under it; the Wiener filter of the same data for comparison.
 *
 *   lensdiff_learned OUTDIR [N [MODEL]]
 *
 * N x N pixels of 0.5 arcmin (default 32; the demo model needs an even N).
 * MODEL is a `lensdiff train` model file trained on 0.5' pixels; without it
 * the library's built-in "demo-lognormal-hybrid" is used, so the program needs
 * no file at all.
 *
 * Files written to OUTDIR (raw little-endian, row-major [y][x]):
 *   truth.f32    simulated convergence                float32[N*N]
 *   wiener.f32   Wiener filter (Gaussian prior)       float32[N*N]
 *   mean.f32     posterior mean (learned prior)       float32[N*N]
 *   std.f32      posterior standard deviation         float32[N*N]
 *   samples.f32  posterior samples [chain][y][x]      float32[CHAINS*N*N]
 *   chi2.f64     reduced shear chi^2 of each chain    float64[CHAINS]
 *
 * lensdiff_learned.f90 does exactly the same; the outputs are bitwise equal,
 * and equal to `lensdiff sample --model` on the same shear (tests/c_examples.rs).
 * C99; build with `make learned` (see README.md).
 */
#include <lensdiff.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The settings (keep in sync with lensdiff_learned.f90 and tests/c_examples.rs). */
#define DEFAULT_N 32
#define PIXEL_ARCMIN 0.5
#define NOISE_SIGMA 0.05
#define LOGNORMAL_LAMBDA 0.03
#define SIM_SEED 7u
#define SIGMA_E 0.26 /* unused: the noise model is set explicitly */
#define N_GAL 30.0   /* unused: idem */
#define WIENER_TOL 1e-6
#define WIENER_MAX_ITER 1000u
#define CHAINS 4u
#define BATCH 2u
#define LEVELS 12u
#define SAMPLER_SEED 3u
#define BUILTIN_MODEL "demo-lognormal-hybrid"

/* Reports a failed call and returns 1 (so that `if (check(...)) goto done;`). */
static int check(lensdiff_status st, const char *what)
{
    if (st == LENSDIFF_STATUS_OK) {
        return 0;
    }
    fprintf(stderr, "lensdiff_learned: %s failed: %s: %s\n", what, lensdiff_status_name(st),
            lensdiff_last_error());
    return 1;
}

/* Writes `n` elements of `size` bytes (4 or 8), little-endian hosts only. */
static int write_raw(const char *dir, const char *name, const void *data, size_t size, size_t n)
{
    char path[4096];
    FILE *f;
    int ok;

    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        fprintf(stderr, "lensdiff_learned: path too long: %s/%s\n", dir, name);
        return 1;
    }
    f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "lensdiff_learned: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    ok = fwrite(data, size, n, f) == n;
    if (fclose(f) != 0) {
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "lensdiff_learned: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* Root-mean-square difference of two maps. */
static double rmse(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return n > 0 ? sqrt(s / (double)n) : 0.0;
}

int main(int argc, char **argv)
{
    const char *outdir, *model = NULL;
    size_t n = DEFAULT_N, npix, chains = 0, json_len = 0;
    const uint16_t one = 1;
    lensdiff_problem *problem = NULL;
    lensdiff_sampler *sampler = NULL;
    lensdiff_sampler_config cfg;
    lensdiff_model_info info;
    float *truth = NULL, *wiener = NULL, *mean = NULL, *sd = NULL, *samples = NULL;
    double *chi2 = NULL;
    uint32_t iterations = 0;
    uint64_t nfe = 0;
    double seconds = 0.0;
    int rc = 1;

    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s OUTDIR [N [MODEL]]\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    if (argc >= 3) {
        char *end = NULL;
        unsigned long v;
        errno = 0;
        v = strtoul(argv[2], &end, 10);
        if (errno != 0 || end == argv[2] || *end != '\0' || v < 4 || v > 4096) {
            fprintf(stderr, "lensdiff_learned: N must be an integer in [4, 4096], got '%s'\n",
                    argv[2]);
            return 2;
        }
        n = (size_t)v;
    }
    if (argc == 4) {
        model = argv[3];
    }
    if (*(const unsigned char *)&one != 1) {
        fprintf(stderr, "lensdiff_learned: big-endian hosts are not supported\n");
        return 1;
    }
    if (lensdiff_version() / 10000 != LENSDIFF_VERSION_MAJOR ||
        lensdiff_version() < LENSDIFF_VERSION_NUMBER) {
        /* the learned prior needs a library of this major version, 0.4 or newer */
        fprintf(stderr, "lensdiff_learned: library %s does not serve the header %d.%d.%d\n",
                lensdiff_version_string(), LENSDIFF_VERSION_MAJOR, LENSDIFF_VERSION_MINOR,
                LENSDIFF_VERSION_PATCH);
        return 1;
    }
    npix = n * n;
    truth = malloc(npix * sizeof *truth);
    wiener = malloc(npix * sizeof *wiener);
    mean = malloc(npix * sizeof *mean);
    sd = malloc(npix * sizeof *sd);
    if (!truth || !wiener || !mean || !sd) {
        fprintf(stderr, "lensdiff_learned: out of memory\n");
        goto done;
    }

    /* the problem: grid, the Gaussian prior the fields are simulated from (and
       the Wiener filter's), uniform noise, a log-normal field and its shear */
    if (check(lensdiff_problem_create(n, n, PIXEL_ARCMIN, &problem), "lensdiff_problem_create") ||
        check(lensdiff_problem_set_prior_default(problem), "lensdiff_problem_set_prior_default") ||
        check(lensdiff_problem_set_noise_uniform(problem, NOISE_SIGMA),
              "lensdiff_problem_set_noise_uniform") ||
        check(lensdiff_problem_simulate(problem, LENSDIFF_FIELD_LOGNORMAL, LOGNORMAL_LAMBDA,
                                        SIGMA_E, N_GAL, SIM_SEED, truth, npix),
              "lensdiff_problem_simulate") ||
        check(lensdiff_wiener(problem, WIENER_TOL, WIENER_MAX_ITER, wiener, npix, &iterations),
              "lensdiff_wiener")) {
        goto done;
    }

    /* the learned prior: the samplers of this problem use it from now on
       (lensdiff_problem_load_model_buffer takes the bytes from memory) */
    if (model != NULL) {
        if (check(lensdiff_problem_load_model(problem, model), "lensdiff_problem_load_model")) {
            goto done;
        }
    } else if (check(lensdiff_problem_load_builtin_model(problem, BUILTIN_MODEL),
                     "lensdiff_problem_load_builtin_model")) {
        goto done;
    }
    if (check(lensdiff_problem_model_info(problem, &info, sizeof info),
              "lensdiff_problem_model_info") ||
        check(lensdiff_problem_model_json(problem, NULL, 0, &json_len),
              "lensdiff_problem_model_json")) {
        goto done;
    }

    /* posterior sampling with the default sampler (Heun, spectral guidance) */
    if (check(lensdiff_sampler_config_init(&cfg), "lensdiff_sampler_config_init")) {
        goto done;
    }
    cfg.chains = CHAINS;
    cfg.batch = BATCH;
    cfg.levels = LEVELS;
    cfg.seed = SAMPLER_SEED;
    if (check(lensdiff_sampler_create(problem, &cfg, &sampler), "lensdiff_sampler_create") ||
        check(lensdiff_sampler_run(sampler), "lensdiff_sampler_run") ||
        check(lensdiff_sampler_chains(sampler, &chains), "lensdiff_sampler_chains")) {
        goto done;
    }
    samples = malloc(chains * npix * sizeof *samples);
    chi2 = malloc(chains * sizeof *chi2);
    if (!samples || !chi2) {
        fprintf(stderr, "lensdiff_learned: out of memory\n");
        goto done;
    }
    if (check(lensdiff_sampler_mean(sampler, mean, npix), "lensdiff_sampler_mean") ||
        check(lensdiff_sampler_std(sampler, sd, npix), "lensdiff_sampler_std") ||
        check(lensdiff_sampler_samples(sampler, samples, chains * npix),
              "lensdiff_sampler_samples") ||
        check(lensdiff_sampler_chi2(sampler, chi2, chains), "lensdiff_sampler_chi2") ||
        check(lensdiff_sampler_stats(sampler, &nfe, &seconds), "lensdiff_sampler_stats")) {
        goto done;
    }

    if (write_raw(outdir, "truth.f32", truth, 4, npix) ||
        write_raw(outdir, "wiener.f32", wiener, 4, npix) ||
        write_raw(outdir, "mean.f32", mean, 4, npix) ||
        write_raw(outdir, "std.f32", sd, 4, npix) ||
        write_raw(outdir, "samples.f32", samples, 4, chains * npix) ||
        write_raw(outdir, "chi2.f64", chi2, 8, chains)) {
        goto done;
    }

    printf("lensdiff %s (C): %lux%lu pixels of %.2f', %lu chains\n", lensdiff_version_string(),
           (unsigned long)n, (unsigned long)n, PIXEL_ARCMIN, (unsigned long)chains);
    printf("  model %s: %s, %lu parameters, %u levels (N a multiple of %u), "
           "sigma_data %.5f, sigma_max %.5f, %lu bytes of JSON\n",
           model != NULL ? model : BUILTIN_MODEL, info.hybrid ? "hybrid" : "pure",
           (unsigned long)info.n_params, (unsigned)info.levels, (unsigned)info.side_multiple,
           info.sigma_data, info.sigma_max, (unsigned long)json_len);
    printf("  sampler: NFE %lu per chain, %.3f s; wiener: %lu CG iterations\n",
           (unsigned long)nfe, seconds, (unsigned long)iterations);
    printf("  rmse(wiener) = %.6f  rmse(mean) = %.6f  chi2[0] = %.4f\n",
           rmse(wiener, truth, npix), rmse(mean, truth, npix), chi2[0]);
    printf("  wrote %s/{truth,wiener,mean,std,samples}.f32, chi2.f64\n", outdir);
    rc = 0;

done:
    /* destroy accepts NULL; its status is checked anyway */
    if (check(lensdiff_sampler_destroy(sampler), "lensdiff_sampler_destroy")) {
        rc = 1;
    }
    if (check(lensdiff_problem_destroy(problem), "lensdiff_problem_destroy")) {
        rc = 1;
    }
    free(truth);
    free(wiener);
    free(mean);
    free(sd);
    free(samples);
    free(chi2);
    return rc;
}
