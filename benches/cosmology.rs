//! Speed of one cosmology -> convergence C_ell (BENCHMARKS.md): 128 log-spaced
//! ells in [10, 10000], Eisenstein–Hu + halofit + Limber, for one source bin
//! (the sbi_lens 128² n(z)) and for the 5 LSST-Y10 tomographic bins (15
//! spectra), on one thread. The targets are 2 ms and 10 ms; the
//! comparison row is pyccl on the same machine (`bench/ccl_cl_timing.py`).
//!
//! Run: `cargo bench --bench cosmology`.

use std::time::Instant;

use lensdiff::cosmo::limber::{convergence_cl, ClOptions};
use lensdiff::cosmo::nz::Nz;
use lensdiff::cosmo::Cosmology;

fn main() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let ells: Vec<f64> = (0..128)
            .map(|i| 10f64.powf(1.0 + 3.0 * i as f64 / 127.0))
            .collect();
        let one = Nz::Smail { a: 0.5, b: 2.0, z0: 1.0, z_max: 10.0 };
        let lsst = Nz::Smail { a: 2.0, b: 0.68, z0: 0.11, z_max: 3.5 };
        let opts = ClOptions::default();
        for (what, nz, nbins) in [("1 bin", &one, 1), ("5 bins", &lsst, 5)] {
            let bins = nz.bins(nbins, 0.05).unwrap();
            // a different cosmology per call, as in a training or quadrature loop
            let mut times = Vec::new();
            for rep in 0..60 {
                let s8 = 0.7 + 0.2 * (rep as f64 / 60.0);
                let c = Cosmology::new(0.25, 0.049, 0.67, 0.96, s8, -1.0, 0.0).unwrap();
                let t = Instant::now();
                let cl = convergence_cl(&c, &bins, &ells, &opts).unwrap();
                times.push(t.elapsed().as_secs_f64());
                assert!(cl.cl.iter().flatten().all(|v| v.is_finite()));
            }
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            println!(
                "cosmology -> C_ell, {what} ({} spectra), 128 ells, 1 thread: median {:.2} ms, min {:.2} ms",
                nbins * (nbins + 1) / 2,
                median * 1e3,
                times[0] * 1e3
            );
        }
    });
}
