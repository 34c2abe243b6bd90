//! Helpers of the joint-inference tests (tests/joint.rs, tests/joint_guided.rs).

use lensdiff::prior::joint::gaussian::GaussianJoint;
use lensdiff::prior::joint::Rings;
use lensdiff::rng::{Philox, Stream};
use lensdiff::sampler::joint_oracle::{JointReference, ParamComparison};

/// A draw of `(u, k)` from the joint prior at `u` (k a Gaussian field of
/// power S_u in joint units), plus noise sigma on both parts.
pub fn diffused_draw(j: &GaussianJoint, u: &[f64], sigma: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let g = *j.rings().grid();
    let power: Vec<f64> = j
        .prior_power(u)
        .unwrap()
        .iter()
        .map(|p| p / j.sigma_d().powi(2))
        .collect();
    let k = lensdiff::fields::gaussian_fields(&g, &power, seed, 0, 1).unwrap();
    let mut z = vec![0.0f64; g.len() + u.len()];
    Philox::new(seed, Stream::Sampler, 0, 0).fill_normal_f64(&mut z);
    let ks: Vec<f64> = k
        .iter()
        .zip(&z)
        .map(|(k, z)| *k as f64 + sigma * z)
        .collect();
    let us: Vec<f64> = u
        .iter()
        .zip(&z[g.len()..])
        .map(|(u, z)| u + sigma * z)
        .collect();
    (us, ks)
}

/// Allowances for a known, documented bias, added to the Monte-Carlo bounds
/// of [`assert_params_within_mc_error`]; all 0 for an exact method.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bias {
    /// On the mean errors, in posterior sds.
    pub mean: f64,
    /// On the std ratios.
    pub std: f64,
    /// On the correlation.
    pub rho: f64,
}

/// Asserts the statistics of `n` independent chains ([`ParamComparison`],
/// two parameters) at 4 Monte-Carlo standard errors each, plus `bias`: the
/// mean's error is `sd / sqrt(n)`, the std's relative one `1 / sqrt(2n)`, the
/// correlation's `(1 - rho²) / sqrt(n)` (n = 240: 0.26 sd, 18%, 0.26 (1 -
/// rho²); n = 2000: 0.09 sd, 6.3%, 0.09 (1 - rho²)).
pub fn assert_params_within_mc_error(name: &str, n: usize, c: &ParamComparison, bias: Bias) {
    let n = n as f64;
    for d in 0..2 {
        assert!(
            c.mean_error[d].abs() < 4.0 / n.sqrt() + bias.mean,
            "{name}: mean {d} off by {} sd",
            c.mean_error[d]
        );
        assert!(
            (c.std_ratio[d] - 1.0).abs() < 4.0 / (2.0 * n).sqrt() + bias.std,
            "{name}: std {d} ratio {}",
            c.std_ratio[d]
        );
    }
    let rho = c.exact_correlation;
    assert!(
        (c.correlation - rho).abs() < 4.0 * (1.0 - rho * rho) / n.sqrt() + bias.rho,
        "{name}: rho {} vs {rho}",
        c.correlation
    );
}

/// The maps against the theta-marginalised exact posterior, per band of
/// rings (6 bands of equal dof): each chain's band power of `K' - E[K' | y]`
/// averaged over chains, against `E[Var(K' | y)]` of the reference. A wrong
/// posterior mean inflates it, a wrong spread moves it either way. Tolerance:
/// 4 Monte-Carlo errors (the std of the chains' band powers over sqrt(n)) plus
/// `excess`, the caller's allowance for a known bias (the integrators'
/// discretisation: Heun with 64 EDM levels has a 1.1% variance excess on the
/// map-only oracle, docs/sampling.md).
pub fn check_kappa(name: &str, maps: &[f32], rings: &Rings, r: &JointReference, excess: f64) {
    let g = *rings.grid();
    let n_pix = g.len();
    let fft = lensdiff::fft::Fft2::<f64>::new(g.nx, g.ny);
    let total: f64 = rings.counts().iter().sum();
    // ring -> band
    let mut band_of = vec![0usize; rings.len()];
    let mut acc = 0.0;
    for (b, c) in band_of.iter_mut().zip(rings.counts()) {
        *b = ((acc / total * 6.0) as usize).min(5);
        acc += c;
    }
    let mut dof = [0.0; 6];
    let mut want = [0.0; 6];
    for rr in 0..rings.len() {
        dof[band_of[rr]] += rings.counts()[rr];
        want[band_of[rr]] += rings.counts()[rr] * r.k_var_ring[rr];
    }
    let per_chain: Vec<[f64; 6]> = maps
        .chunks(n_pix)
        .map(|m| {
            let x: Vec<f64> = m.iter().map(|&v| v as f64).collect();
            let mut spec = vec![num_complex::Complex::new(0.0, 0.0); g.spectral_len()];
            fft.forward(&x, &mut spec);
            let d: Vec<_> = spec
                .iter()
                .zip(&r.k_mean_spec)
                .map(|(a, b)| a - b)
                .collect();
            let ring_power = rings.cross(&d, &d).unwrap();
            let mut t = [0.0; 6];
            for rr in 0..rings.len() {
                t[band_of[rr]] += ring_power[rr];
            }
            t
        })
        .collect();
    let n = per_chain.len() as f64;
    for b in 0..6 {
        let v: Vec<f64> = per_chain.iter().map(|t| t[b] / dof[b]).collect();
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let w = want[b] / dof[b];
        let (ratio, se) = (mean / w, sd / n.sqrt() / w);
        eprintln!("  {name}: band {b}: kappa variance ratio {ratio:.3} ± {se:.3}");
        assert!(
            (ratio - 1.0).abs() < 4.0 * se + excess,
            "{name}: band {b}: {ratio} ± {se}"
        );
    }
}
