/*
 * lensdiff C ABI example: simulate a masked shear field, reconstruct it with
 * Kaiser-Squires, the Wiener filter and posterior sampling, and write the maps
 * as raw little-endian binary files.
 *
 *   lensdiff_example OUTDIR [N]
 *
 * Files written to OUTDIR (all row-major [y][x], N x N pixels):
 *   truth.f32    simulated convergence                float32[N*N]
 *   wiener.f32   Wiener filter                        float32[N*N]
 *   ks.f32       Kaiser-Squires E map (1 px smoothing) float32[N*N]
 *   mean.f32     posterior mean                       float32[N*N]
 *   std.f32      posterior standard deviation         float32[N*N]
 *   samples.f32  posterior samples [chain][y][x]      float32[CHAINS*N*N]
 *   chi2.f64     reduced shear chi^2 of each chain    float64[CHAINS]
 *
 * lensdiff_example.f90 does exactly the same; the outputs are bitwise equal.
 * C99; build with `make` (see README.md).
 */
#include <lensdiff.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The settings (keep in sync with lensdiff_example.f90 and tests/c_examples.rs). */
#define DEFAULT_N 48
#define PIXEL_ARCMIN 1.0
#define NOISE_SIGMA 0.05
#define SIM_SEED 7u
#define SIGMA_E 0.26 /* unused: the noise model is set explicitly */
#define N_GAL 30.0   /* unused: idem */
#define KS_SMOOTH_PX 1.0
#define WIENER_TOL 1e-6
#define WIENER_MAX_ITER 1000u
#define CHAINS 4u
#define BATCH 2u
#define LEVELS 16u
#define SAMPLER_SEED 3u

/* Reports a failed call and returns 1 (so that `if (check(...)) goto done;`). */
static int check(lensdiff_status st, const char *what)
{
    if (st == LENSDIFF_STATUS_OK) {
        return 0;
    }
    fprintf(stderr, "lensdiff_example: %s failed: %s: %s\n", what,
            lensdiff_status_name(st), lensdiff_last_error());
    return 1;
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b[sizeof one];
    memcpy(b, &one, sizeof one);
    return b[0] == 1;
}

/* Writes `n` elements of `size` bytes (4 or 8) in little-endian byte order. */
static int write_le(const char *dir, const char *name, const void *data, size_t size,
                    size_t n)
{
    char path[4096];
    const unsigned char *p = (const unsigned char *)data;
    FILE *f;
    size_t i;
    int ok = 1;

    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        fprintf(stderr, "lensdiff_example: path too long: %s/%s\n", dir, name);
        return 1;
    }
    f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "lensdiff_example: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (host_is_little_endian()) {
        ok = fwrite(p, size, n, f) == n;
    } else {
        for (i = 0; ok && i < n; i++) {
            unsigned char b[8];
            size_t k;
            for (k = 0; k < size; k++) {
                b[k] = p[i * size + size - 1 - k];
            }
            ok = fwrite(b, 1, size, f) == size;
        }
    }
    if (fclose(f) != 0) {
        ok = 0;
    }
    if (!ok) {
        fprintf(stderr, "lensdiff_example: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

static double rms(const float *x, size_t n)
{
    double s = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        s += (double)x[i] * (double)x[i];
    }
    return n > 0 ? sqrt(s / (double)n) : 0.0;
}

int main(int argc, char **argv)
{
    const char *outdir;
    size_t n = DEFAULT_N, npix, chains = 0, x, y, hole;
    lensdiff_problem *problem = NULL;
    lensdiff_sampler *sampler = NULL;
    lensdiff_sampler_config cfg;
    lensdiff_cosmology cosmo;
    uint8_t *mask = NULL;
    float *truth = NULL, *wiener = NULL, *ks = NULL, *mean = NULL, *sd = NULL;
    float *samples = NULL;
    double *chi2 = NULL;
    uint32_t iterations = 0;
    uint64_t nfe = 0;
    double seconds = 0.0;
    int rc = 1;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s OUTDIR [N]\n", argv[0]);
        return 2;
    }
    outdir = argv[1];
    if (argc == 3) {
        char *end = NULL;
        unsigned long v;
        errno = 0;
        v = strtoul(argv[2], &end, 10);
        if (errno != 0 || end == argv[2] || *end != '\0' || v < 4 || v > 4096) {
            fprintf(stderr, "lensdiff_example: N must be an integer in [4, 4096], got '%s'\n",
                    argv[2]);
            return 2;
        }
        n = (size_t)v;
    }
    if (lensdiff_version() / 10000 != LENSDIFF_VERSION_MAJOR) {
        fprintf(stderr, "lensdiff_example: library version %s does not match header %d.%d.%d\n",
                lensdiff_version_string(), LENSDIFF_VERSION_MAJOR, LENSDIFF_VERSION_MINOR,
                LENSDIFF_VERSION_PATCH);
        return 1;
    }
    npix = n * n;
    hole = n / 4;

    mask = malloc(npix);
    truth = malloc(npix * sizeof *truth);
    wiener = malloc(npix * sizeof *wiener);
    ks = malloc(npix * sizeof *ks);
    mean = malloc(npix * sizeof *mean);
    sd = malloc(npix * sizeof *sd);
    if (!mask || !truth || !wiener || !ks || !mean || !sd) {
        fprintf(stderr, "lensdiff_example: out of memory\n");
        goto done;
    }
    /* observed everywhere except an N/4 x N/4 hole in the corner (x, y < N/4) */
    for (y = 0; y < n; y++) {
        for (x = 0; x < n; x++) {
            mask[y * n + x] = (uint8_t)!(x < hole && y < hole);
        }
    }

    /* the problem: grid, prior, mask, noise, simulated data */
    /* (a prior from a cosmology, sbi_lens fiducial and Smail n(z), is one call away; the
       example then keeps the built-in prior so its outputs match the Rust reference) */
    if (check(lensdiff_problem_create(n, n, PIXEL_ARCMIN, &problem), "lensdiff_problem_create") ||
        check(lensdiff_cosmology_init(&cosmo), "lensdiff_cosmology_init") ||
        check(lensdiff_problem_set_prior_cosmology(problem, &cosmo),
              "lensdiff_problem_set_prior_cosmology") ||
        check(lensdiff_problem_set_prior_default(problem), "lensdiff_problem_set_prior_default") ||
        check(lensdiff_problem_set_mask(problem, mask, npix), "lensdiff_problem_set_mask") ||
        check(lensdiff_problem_set_noise_uniform(problem, NOISE_SIGMA),
              "lensdiff_problem_set_noise_uniform") ||
        check(lensdiff_problem_simulate(problem, LENSDIFF_FIELD_GAUSSIAN, 0.0, SIGMA_E, N_GAL,
                                        SIM_SEED, truth, npix),
              "lensdiff_problem_simulate")) {
        goto done;
    }

    /* the baselines */
    if (check(lensdiff_wiener(problem, WIENER_TOL, WIENER_MAX_ITER, wiener, npix, &iterations),
              "lensdiff_wiener") ||
        check(lensdiff_ks(problem, KS_SMOOTH_PX, ks, NULL, npix), "lensdiff_ks")) {
        goto done;
    }

    /* posterior sampling */
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
        fprintf(stderr, "lensdiff_example: out of memory\n");
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

    if (write_le(outdir, "truth.f32", truth, 4, npix) ||
        write_le(outdir, "wiener.f32", wiener, 4, npix) ||
        write_le(outdir, "ks.f32", ks, 4, npix) || write_le(outdir, "mean.f32", mean, 4, npix) ||
        write_le(outdir, "std.f32", sd, 4, npix) ||
        write_le(outdir, "samples.f32", samples, 4, chains * npix) ||
        write_le(outdir, "chi2.f64", chi2, 8, chains)) {
        goto done;
    }

    printf("lensdiff %s (C): %lux%lu pixels, hole %lux%lu, %lu chains\n",
           lensdiff_version_string(), (unsigned long)n, (unsigned long)n, (unsigned long)hole,
           (unsigned long)hole, (unsigned long)chains);
    printf("  wiener: %lu CG iterations; sampler: NFE %lu per chain, %.3f s\n",
           (unsigned long)iterations, (unsigned long)nfe, seconds);
    printf("  rms(truth) = %.6f  rms(wiener) = %.6f  rms(mean) = %.6f  chi2[0] = %.4f\n",
           rms(truth, npix), rms(wiener, npix), rms(mean, npix), chi2[0]);
    printf("  wrote %s/{truth,wiener,ks,mean,std,samples}.f32, chi2.f64\n", outdir);
    rc = 0;

done:
    /* destroy accepts NULL; its status is checked anyway */
    if (check(lensdiff_sampler_destroy(sampler), "lensdiff_sampler_destroy")) {
        rc = 1;
    }
    if (check(lensdiff_problem_destroy(problem), "lensdiff_problem_destroy")) {
        rc = 1;
    }
    free(mask);
    free(truth);
    free(wiener);
    free(ks);
    free(mean);
    free(sd);
    free(samples);
    free(chi2);
    return rc;
}
