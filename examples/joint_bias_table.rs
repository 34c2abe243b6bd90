//! The bias table of docs/joint.md (issue #15, part 4b): guided joint
//! sampling with the exact Gaussian joint prior against the exact posterior
//! of the shear oracle ([`ShearOracle`], 63², seed 77), per guidance scheme,
//! integrator and number of levels.
//!
//! ```text
//! cargo run --release --example joint_bias_table -- [CHAINS] [GUIDANCE:SAMPLER:LEVELS ...]
//! cargo run --release --example joint_bias_table -- 240 spectral:heun:64 spectral:edm:128
//! ```
//!
//! Default: 240 chains, spectral, tweedie and annealed guidance with Heun 64
//! and EDM 128. One line per run: the theta means' errors in posterior sds,
//! the std ratios, the correlation against the exact one, with the
//! Monte-Carlo standard errors of `n` chains (mean `1/sqrt(n)` sd, std
//! `1/sqrt(2n)`, correlation `(1 - rho²)/sqrt(n)`). A measurement, not a
//! test: tests/joint_guided.rs asserts the default.

use lensdiff::sampler::joint_guided::JointGuidedPosterior;
use lensdiff::sampler::joint_oracle::ShearOracle;
use lensdiff::sampler::{sample, Guidance, RunSpec, SamplerConfig, SamplerKind};

fn main() -> lensdiff::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let chains: usize = args.first().and_then(|v| v.parse().ok()).unwrap_or(240);
    let mut runs: Vec<String> = args.iter().skip(1).cloned().collect();
    if runs.is_empty() {
        for g in ["spectral", "tweedie", "annealed"] {
            runs.push(format!("{g}:heun:64"));
            runs.push(format!("{g}:edm:128"));
        }
    }
    let o = ShearOracle::sbi_lens(63, 77)?;
    let r = o.exact()?.reference(161)?;
    let sd = [r.u_cov[0].sqrt(), r.u_cov[3].sqrt()];
    let rho = r.u_cov[1] / (sd[0] * sd[1]);
    let n = chains as f64;
    println!(
        "exact: rho {rho:.3}; {chains} chains: standard errors {:.3} sd (means), {:.3} (std ratios), {:.3} (rho)",
        1.0 / n.sqrt(),
        1.0 / (2.0 * n).sqrt(),
        (1.0 - rho * rho) / n.sqrt()
    );
    for run in &runs {
        let parts: Vec<&str> = run.split(':').collect();
        let [g, s, l] = parts[..] else {
            return Err(lensdiff::Error::invalid(
                "run",
                format!("expected GUIDANCE:SAMPLER:LEVELS, got `{run}`"),
            ));
        };
        let guidance = match g {
            "spectral" => Guidance::Spectral { tol: 1e-6 },
            "tweedie" => Guidance::Tweedie { inflate: false },
            "annealed" => Guidance::Annealed { c: 0.5 },
            other => {
                return Err(lensdiff::Error::invalid(
                    "guidance",
                    format!("unknown `{other}` (spectral, tweedie, annealed)"),
                ))
            }
        };
        let levels: usize = l
            .parse()
            .map_err(|_| lensdiff::Error::invalid("levels", format!("not a number: `{l}`")))?;
        let post = JointGuidedPosterior::new(&o.prior, &o.data, guidance)?;
        let cfg = SamplerConfig {
            kind: SamplerKind::from_name(s)?,
            levels,
            ..SamplerConfig::default()
        };
        let set = sample(&post, &cfg, &RunSpec::new(5, chains), &mut |_, _| {})?;
        let c = r.compare_params(&set.params.unwrap_or_default())?;
        println!(
            "{g} {s} {levels}: NFE {}, {:.1} s; mean error {:+.3} {:+.3} sd; std ratio {:.3} {:.3}; rho {:.3}",
            set.nfe,
            set.seconds,
            c.mean_error[0],
            c.mean_error[1],
            c.std_ratio[0],
            c.std_ratio[1],
            c.correlation
        );
    }
    Ok(())
}
