//! `lensdiff bench`: posterior samples per second at the 360² COSMOS
//! geometry on each requested device, and each kernel's bandwidth against a
//! device-to-device copy (BENCHMARKS.md records the results).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args as ClapArgs;
use ndarray::{ArrayD, IxDyn};

use lensdiff::backend::cpu::Cpu;
use lensdiff::backend::elementwise::{run_named, Row, OPERATIONS};
use lensdiff::backend::{Backend, Device, Elementwise, NoiseKey};
use lensdiff::error::{Error, Result};
use lensdiff::grid::Grid;
use lensdiff::lensing::KaiserSquires;
use lensdiff::noise::NoiseModel;
use lensdiff::prior::{GaussianPrior, Prior};
use lensdiff::rng::Stream;
use lensdiff::sampler::{
    sample, Guidance, GuidedPosterior, RunSpec, SampleSet, SamplerConfig, ShearData,
};
use lensdiff::spectrum::ClTable;

#[derive(ClapArgs)]
pub struct Args {
    /// Devices to time, comma separated (`cpu`, `cuda:N`).
    #[arg(long, value_delimiter = ',', default_value = "cpu", value_parser = crate::common::parse_device)]
    pub devices: Vec<Device>,
    /// Batch sizes: each measurement integrates one batch of this many chains.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    pub batch: Vec<usize>,
    /// At most this many chains per CPU measurement (the CPU is slow at 360²).
    #[arg(long)]
    pub cpu_max_chains: Option<usize>,
    /// Noise levels of the Heun sampler (the default configuration: 64).
    #[arg(long, default_value_t = 64)]
    pub levels: usize,
    /// Inner conjugate-gradient tolerance of the spectral guidance.
    #[arg(long, default_value_t = 1e-4)]
    pub inner_tol: f64,
    /// Directory with cosmos/std1.fits, cosmos/std2.fits and
    /// ktng/ktng_PS_theory.npy, ktng/ktng_kappa360v2.fits (default:
    /// $LENSDIFF_DATA, else ../shared/data; a synthetic stand-in without them).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Also time every elementwise kernel against a device-to-device copy.
    #[arg(long)]
    pub kernels: bool,
    /// Maps per kernel launch in the kernel benchmark (default 128 on CUDA, 8 on the CPU).
    #[arg(long)]
    pub kernel_maps: Option<usize>,
    /// Write the problem (and this run's posterior mean and std) for
    /// bench/torch_gaussian_sampler.py to this directory.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Write the results as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The benchmark problem: 360² at 0.29'/px.
struct Problem {
    prior: GaussianPrior,
    data: ShearData,
    source: String,
}

fn data_dir(a: &Args) -> Option<PathBuf> {
    let d = a
        .data
        .clone()
        .or_else(|| std::env::var_os("LENSDIFF_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/data"));
    d.join("cosmos/std1.fits").is_file().then_some(d)
}

fn read_map(p: &Path) -> Result<Vec<f32>> {
    Ok(lensdiff::io::read_map(p, Some([360, 360]))?
        .iter()
        .copied()
        .collect())
}

fn problem(a: &Args) -> Result<Problem> {
    let g = Grid::square(360, 0.29)?;
    let (table, truth, noise, source) = match data_dir(a) {
        Some(d) => {
            let noise = NoiseModel::from_std(
                g,
                &read_map(&d.join("cosmos/std1.fits"))?,
                &read_map(&d.join("cosmos/std2.fits"))?,
                None,
            )?;
            (
                ClTable::read(&d.join("ktng/ktng_PS_theory.npy"))?,
                read_map(&d.join("ktng/ktng_kappa360v2.fits"))?,
                noise,
                format!(
                    "COSMOS noise and mask, kappaTNG truth and spectrum ({})",
                    d.display()
                ),
            )
        }
        None => {
            let table = ClTable::default_kappa();
            let truth = lensdiff::fields::gaussian_fields(&g, &table.pixel_power(&g), 1, 0, 1)?;
            let mask: Vec<bool> = (0..g.len())
                .map(|i| (i % 360) > 60 && (i / 360) > 40)
                .collect();
            let noise = NoiseModel::uniform(g, 0.12, Some(&mask))?;
            (
                table,
                truth,
                noise,
                "synthetic stand-in (no COSMOS data found)".into(),
            )
        }
    };
    let (g1, g2) = lensdiff::fields::simulate_shear(&truth, &noise, 2023, 0)?;
    Ok(Problem {
        prior: GaussianPrior::from_cl(g, &table)?,
        data: ShearData::new(g1, g2, noise)?,
        source,
    })
}

/// One timed sampling run.
struct Timing {
    device: String,
    batch: usize,
    set: SampleSet,
}

fn run_once(
    device: Device,
    p: &Problem,
    cfg: &SamplerConfig,
    g: Guidance,
    seed: u64,
    chains: usize,
) -> Result<SampleSet> {
    let post = GuidedPosterior::new(&p.prior, &p.data, g)?;
    sample(
        &post,
        cfg,
        &RunSpec::new(seed, chains).on(device),
        &mut |_, _| {},
    )
}

pub fn run(a: Args) -> Result<()> {
    if a.batch.contains(&0) {
        return Err(Error::invalid("--batch", "batch sizes must be at least 1"));
    }
    let p = problem(&a)?;
    let grid = *p.prior.grid();
    let guidance = Guidance::Spectral { tol: a.inner_tol };
    let cfg = SamplerConfig {
        levels: a.levels,
        ..SamplerConfig::default()
    };
    println!(
        "360x360 at 0.29'/px, {} observed pixels; {}",
        p.data.noise.n_observed(),
        p.source
    );
    println!(
        "Heun ODE, {} EDM levels ({} NFE per chain), spectral guidance (inner CG to {:.0e})\n",
        cfg.levels,
        2 * (cfg.levels - 1),
        a.inner_tol
    );
    let mut timings = Vec::new();
    let mut kernels = Vec::new();
    for dev in &a.devices {
        let cuda = match dev {
            Device::Cpu => None,
            Device::Cuda(i) => Some(lensdiff::backend::cuda::Cuda::shared(*i)?),
        };
        let name = match &cuda {
            Some(be) => be.describe(),
            None => Cpu::new().describe(),
        };
        if cuda.is_some() {
            // compiles the kernels and plans the transforms outside the timing
            let warm = SamplerConfig {
                levels: 3,
                ..cfg.clone()
            };
            for &b in &a.batch {
                run_once(*dev, &p, &warm, guidance, a.seed, b)?;
            }
        }
        for &b in &a.batch {
            let chains = match (dev, a.cpu_max_chains) {
                (Device::Cpu, Some(m)) => b.min(m.max(1)),
                _ => b,
            };
            let t0 = Instant::now();
            let mut set = run_once(*dev, &p, &cfg, guidance, a.seed, chains)?;
            set.seconds = t0.elapsed().as_secs_f64();
            println!(
                "{name:<48} batch {chains:>3}: {:>8.3} s  {:>9.3} samples/s  ({:.2} inner CG its per evaluation)",
                set.seconds,
                chains as f64 / set.seconds,
                set.inner_iterations as f64 / (set.nfe as f64 * chains as f64),
            );
            timings.push(Timing {
                device: name.clone(),
                batch: chains,
                set,
            });
        }
        if a.kernels {
            let maps = a
                .kernel_maps
                .unwrap_or(if cuda.is_some() { 128 } else { 8 });
            let rows = match &cuda {
                Some(be) => kernel_bandwidth(be.as_ref(), &grid, maps)?,
                None => kernel_bandwidth(&Cpu::new(), &grid, maps)?,
            };
            print_kernels(&name, maps, &rows);
            kernels.push((name.clone(), rows));
        }
    }
    if let Some(dir) = &a.export {
        let last = timings.iter().max_by_key(|t| t.batch);
        export(dir, &p, &cfg, a.inner_tol, last.map(|t| &t.set))?;
        println!(
            "\nproblem written to {} (for bench/torch_gaussian_sampler.py)",
            dir.display()
        );
    }
    if let Some(path) = &a.json {
        let results: Vec<serde_json::Value> = timings
            .iter()
            .map(|t| {
                serde_json::json!({
                    "device": t.device,
                    "batch": t.batch,
                    "seconds": t.set.seconds,
                    "samples_per_s": t.batch as f64 / t.set.seconds,
                    "nfe": t.set.nfe,
                    "inner_per_eval": t.set.inner_iterations as f64 / (t.set.nfe as f64 * t.batch as f64),
                })
            })
            .collect();
        let kern: Vec<serde_json::Value> = kernels
            .iter()
            .flat_map(|(d, rows)| {
                rows.iter().map(move |r| {
                    serde_json::json!({
                        "device": d, "kernel": r.name, "bytes": r.bytes,
                        "seconds": r.seconds, "gb_per_s": r.gbps(),
                    })
                })
            })
            .collect();
        let doc = serde_json::json!({
            "problem": p.source,
            "levels": cfg.levels,
            "inner_tol": a.inner_tol,
            "results": results,
            "kernels": kern,
        });
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Error::invalid("--json", format!("cannot encode the results: {e}")))?;
        std::fs::write(path, text).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

/// The problem as .npy files (module docs of bench/torch_gaussian_sampler.py).
fn export(
    dir: &Path,
    p: &Problem,
    cfg: &SamplerConfig,
    tol: f64,
    set: Option<&SampleSet>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    let g = *p.prior.grid();
    let map = [g.ny, g.nx];
    let spec = [g.ny, g.nkx()];
    let f32s = |name: &str, v: &[f32], shape: &[usize]| {
        let a = ArrayD::from_shape_vec(IxDyn(shape), v.to_vec())
            .map_err(|e| Error::invalid("export", e.to_string()))?;
        lensdiff::io::npy::write_f32(&dir.join(name), a.view())
    };
    let f64s = |name: &str, v: &[f64], shape: &[usize]| {
        let a = ArrayD::from_shape_vec(IxDyn(shape), v.to_vec())
            .map_err(|e| Error::invalid("export", e.to_string()))?;
        lensdiff::io::npy::write_f64(&dir.join(name), a.view())
    };
    f32s("g1.npy", &p.data.g1, &map)?;
    f32s("g2.npy", &p.data.g2, &map)?;
    f32s("w1.npy", p.data.noise.weight1(), &map)?;
    f32s("w2.npy", p.data.noise.weight2(), &map)?;
    f64s("power.npy", p.prior.power(), &spec)?;
    let ks = KaiserSquires::<f64>::new(g);
    f64s("p1.npy", ks.p1(), &spec)?;
    f64s("p2.npy", ks.p2(), &spec)?;
    let post = GuidedPosterior::new(&p.prior, &p.data, Guidance::Spectral { tol })?;
    let levels = cfg.noise_levels(&post)?;
    f64s("levels.npy", &levels, &[levels.len()])?;
    let mut chains = 0;
    if let Some(set) = set {
        let m = set.moments();
        f32s("mean.npy", &m.mean_f32(), &map)?;
        f32s("std.npy", &m.std_f32(), &map)?;
        chains = set.chains();
    }
    let cfg_json = serde_json::json!({
        "tol": tol, "max_inner": 500, "nx": g.nx, "ny": g.ny,
        "pixel_arcmin": g.pixel_arcmin, "chains": chains,
    });
    let path = dir.join("config.json");
    std::fs::write(&path, cfg_json.to_string()).map_err(|source| Error::Io { path, source })
}

/// One kernel's timing: bytes it must move per launch and seconds per launch.
struct KernelRow {
    name: &'static str,
    bytes: f64,
    seconds: f64,
}

impl KernelRow {
    fn gbps(&self) -> f64 {
        self.bytes / self.seconds / 1e9
    }
}

/// Seconds per call of `f` (after one warm-up call), synchronised.
fn time<B: Backend>(be: &B, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    be.synchronize()?;
    let t0 = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    be.synchronize()?;
    Ok(t0.elapsed().as_secs_f64() / reps as f64)
}

/// Each bandwidth-bound kernel on `maps` maps of `grid`, with the bytes it
/// reads and writes (per-pixel operands broadcast over maps counted once),
/// next to a device-to-device copy of one batch (read + write).
fn kernel_bandwidth<B: Backend>(be: &B, grid: &Grid, maps: usize) -> Result<Vec<KernelRow>> {
    let n = grid.len();
    let len = maps * n;
    let modes = grid.spectral_len();
    let slen = 2 * maps * modes;
    let reps = 20;
    let (f4, f8) = (4.0 * len as f64, 8.0 * len as f64);
    let (s4, s8) = (4.0 * slen as f64, 8.0 * slen as f64);
    let mut x = be.alloc::<f32>(len)?;
    be.fill_normal(
        &mut x,
        n,
        NoiseKey {
            seed: 1,
            stream: Stream::Sampler,
            first_chain: 0,
        },
        0,
    )?;
    let mut y = be.alloc::<f32>(len)?;
    let mut z = be.alloc::<f32>(len)?;
    let mut w = be.alloc::<f32>(len)?;
    be.copy(&x, &mut y)?;
    be.copy(&x, &mut z)?;
    let mut a64 = be.alloc::<f64>(len)?;
    let b64 = be.alloc::<f64>(len)?;
    let mut c64 = be.alloc::<f64>(len)?;
    let mut spec = be.alloc::<f32>(slen)?;
    let mut spec2 = be.alloc::<f32>(slen)?;
    let mut spec3 = be.alloc::<f32>(slen)?;
    let mut spec64 = be.alloc::<f64>(slen)?;
    let mut spec64b = be.alloc::<f64>(slen)?;
    let mut spec64c = be.alloc::<f64>(slen)?;
    let mode32 = be.upload(&vec![0.5f32; modes])?;
    let mode64 = be.upload(&vec![0.5f64; modes])?;
    let pix32 = be.upload(&vec![0.5f32; n])?;
    let pix64 = be.upload(&vec![0.5f64; n])?;
    let active = be.upload(&vec![1u32; maps])?;
    let per_chain = be.upload(&vec![0.1f64; maps])?;
    let mut dots = be.alloc::<f64>(maps)?;
    let mut rows = Vec::new();
    let mut push = |name, bytes, seconds| {
        rows.push(KernelRow {
            name,
            bytes,
            seconds,
        })
    };
    push(
        "copy (device to device)",
        2.0 * f4,
        time(be, reps, || be.copy(&x, &mut w))?,
    );
    // the elementwise table, every row by name: `w` the output, inputs from
    // `y`, `z`, `x`, every scalar 1 (values stay finite and normal)
    for op in OPERATIONS {
        let ins = [&y, &z, &x];
        let ins = ins.get(..op.inputs.len()).ok_or_else(|| {
            Error::invalid(
                "bench",
                format!(
                    "`{}` has more inputs than the benchmark has buffers",
                    op.name
                ),
            )
        })?;
        let scalars = vec![1.0f32; op.scalars.len()];
        push(
            op.name,
            elementwise_bytes(op) * f4,
            time(be, reps, || run_named(be, op.name, &mut w, ins, &scalars))?,
        );
    }
    push(
        "heun_predictor",
        4.0 * f4,
        time(be, reps, || {
            be.heun_predictor(&mut w, &y, &mut z, 1.0, 1e-3)
        })?,
    );
    push(
        "hmc_position_step",
        4.0 * f4,
        time(be, reps, || {
            be.hmc_position_step(&mut w, Some(&mut z), &y, 1e-3)
        })?,
    );
    push(
        "weighted_residual",
        4.0 * f4,
        time(be, reps, || {
            be.weighted_residual(&mut w, &mut z, &pix32, &pix32, &pix32, &pix32)
        })?,
    );
    push(
        "cast (f32 to f64)",
        f4 + f8,
        time(be, reps, || be.cast(&y, &mut a64))?,
    );
    push(
        "cast (f64 to f32)",
        f8 + f4,
        time(be, reps, || be.cast(&b64, &mut w))?,
    );
    push(
        "fill_normal",
        f4,
        time(be, reps, || {
            be.fill_normal(
                &mut w,
                n,
                NoiseKey {
                    seed: 2,
                    stream: Stream::Sampler,
                    first_chain: 0,
                },
                1,
            )
        })?,
    );
    push(
        "gaussian_denoise_gain",
        2.0 * s4,
        time(be, reps, || {
            be.gaussian_denoise_gain(&mut spec, &mode64, 0.1)
        })?,
    );
    push(
        "spectral_scale",
        2.0 * s4,
        time(be, reps, || be.spectral_scale(&mut spec, &mode32))?,
    );
    push(
        "ks_forward_multiply",
        3.0 * s4,
        time(be, reps, || {
            be.ks_forward_multiply(&spec, &mode32, &mode32, &mut spec2, &mut spec3)
        })?,
    );
    push(
        "ks_adjoint_multiply",
        3.0 * s4,
        time(be, reps, || {
            be.ks_adjoint_multiply(&spec2, &spec3, &mode32, &mode32, &mut spec)
        })?,
    );
    push(
        "spectral_scale_f64",
        2.0 * s8,
        time(be, reps, || be.spectral_scale(&mut spec64, &mode64))?,
    );
    push(
        "ks_forward_multiply_f64",
        3.0 * s8,
        time(be, reps, || {
            be.ks_forward_multiply(&spec64, &mode64, &mode64, &mut spec64b, &mut spec64c)
        })?,
    );
    push(
        "ks_adjoint_multiply_f64",
        3.0 * s8,
        time(be, reps, || {
            be.ks_adjoint_multiply(&spec64b, &spec64c, &mode64, &mode64, &mut spec64)
        })?,
    );
    push(
        "multiply_weights_f64",
        2.0 * f8,
        time(be, reps, || be.multiply_weights_f64(&mut a64, &pix64))?,
    );
    push(
        "add_f64",
        3.0 * f8,
        time(be, reps, || be.add(&mut a64, &b64))?,
    );
    push(
        "cg_update_solution",
        6.0 * f8,
        time(be, reps, || {
            be.cg_update_solution(&mut a64, &mut c64, &b64, &b64, &per_chain, &active, n)
        })?,
    );
    push(
        "cg_update_direction",
        3.0 * f8,
        time(be, reps, || {
            be.cg_update_direction(&mut a64, &b64, &per_chain, &active, n)
        })?,
    );
    push(
        "chain_dot_f64",
        2.0 * f8,
        time(be, reps, || be.chain_dot_f64(&a64, &b64, n, &mut dots))?,
    );
    push(
        "chain_norms",
        f4,
        time(be, reps, || be.chain_norms(&y, n, &mut dots))?,
    );
    push(
        "fft_forward (R2C, not bandwidth-bound)",
        f4 + s4,
        time(be, reps, || be.fft_forward(grid, &x, &mut spec))?,
    );
    push(
        "fft_forward_f64 (D2Z)",
        f8 + s8,
        time(be, reps, || be.fft_forward(grid, &b64, &mut spec64))?,
    );
    Ok(rows)
}

/// Elements an elementwise row moves per output element: its inputs, the
/// write, and the read of the output when its expression uses it
/// ([`Row::reads_out`]; the generated kernel loads it only then).
fn elementwise_bytes(op: &Row) -> f64 {
    (op.inputs.len() + 1 + usize::from(op.reads_out())) as f64
}

fn print_kernels(device: &str, maps: usize, rows: &[KernelRow]) {
    let copy = rows.first().map_or(1.0, |r| r.gbps());
    println!("\nkernels on {device}, {maps} maps of 360² per launch (copy = {copy:.0} GB/s):");
    println!(
        "{:<40} {:>10} {:>11} {:>10} {:>8}",
        "kernel", "MB", "µs/launch", "GB/s", "% copy"
    );
    for r in rows {
        println!(
            "{:<40} {:>10.1} {:>11.1} {:>10.0} {:>7.0}%",
            r.name,
            r.bytes / 1e6,
            r.seconds * 1e6,
            r.gbps(),
            100.0 * r.gbps() / copy
        );
    }
}
