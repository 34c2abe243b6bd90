//! `lensdiff`: weak-lensing mass maps from the command line.
//!
//! Every subcommand reads and writes FITS (`.fits`, `.fit`, `.fts`) or NumPy
//! (`.npy`) files by extension, prints a short summary, shows progress on long
//! work and exits with status 1 and a one-line message on bad input.

mod bench_cmd;
mod bin_cmd;
mod common;
mod cosmo_cmd;
mod demo;
mod joint_cmd;
mod ks_cmd;
mod sample_cmd;
mod simulate;
mod spectrum_cmd;
mod train_cmd;
mod train_joint;
mod wiener_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Weak-lensing mass mapping: Kaiser–Squires, Wiener filter, simulations,
/// power spectra and posterior sampling with diffusion priors.
#[derive(Parser)]
#[command(name = "lensdiff", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Posterior samples of the convergence (diffusion sampler; Gaussian prior from --cl, or a learned prior with --model).
    Sample(Box<sample_cmd::Args>),
    /// Joint posterior samples of cosmological parameters and the convergence map (Gaussian joint prior from cosmology, likelihood guidance).
    Joint(Box<joint_cmd::Args>),
    /// Bin a galaxy catalogue (RA, Dec, e1, e2, weight) into shear, noise and mask maps.
    Bin(bin_cmd::Args),
    /// Kaiser–Squires E/B convergence maps from shear maps, optionally smoothed.
    Ks(ks_cmd::Args),
    /// Wiener-filtered convergence (posterior mean under a Gaussian prior).
    Wiener(wiener_cmd::Args),
    /// Simulate a Gaussian or log-normal convergence field and its noisy, masked shear.
    Simulate(simulate::Args),
    /// Binned angular power spectrum of a map or a stack of maps.
    Spectrum(spectrum_cmd::Args),
    /// Convergence C_ell from cosmological parameters (flat wCDM, Eisenstein-Hu, halofit, Limber; tomographic bins).
    Cosmo(cosmo_cmd::Args),
    /// Train a neural denoiser prior (U-Net, denoising score matching) on maps or simulations.
    Train(Box<train_cmd::Args>),
    /// Samples per second at the 360² COSMOS geometry on the CPU and CUDA devices, and kernel bandwidths.
    Bench(bench_cmd::Args),
    /// The main job on built-in defaults: simulate a field, run KS, Wiener and posterior sampling, write the figure.
    Demo(demo::Args),
}

/// One line, like every other error: the first paragraph of clap's message
/// (a list of missing arguments joined onto its heading), without the usage.
fn one_line(text: &str) -> String {
    let mut lines = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim);
    let head = lines
        .next()
        .unwrap_or("bad arguments")
        .trim_start_matches("error: ");
    let rest: Vec<&str> = lines.collect();
    if rest.is_empty() {
        head.to_string()
    } else {
        format!("{head} {}", rest.join(", "))
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            eprintln!(
                "lensdiff: error: {} (see `lensdiff --help`)",
                one_line(&e.to_string())
            );
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Sample(a) => sample_cmd::run(*a),
        Command::Joint(a) => joint_cmd::run(*a),
        Command::Bin(a) => bin_cmd::run(a),
        Command::Ks(a) => ks_cmd::run(a),
        Command::Wiener(a) => wiener_cmd::run(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Spectrum(a) => spectrum_cmd::run(a),
        Command::Cosmo(a) => cosmo_cmd::run(a),
        Command::Train(a) => train_cmd::run(*a),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench_cmd::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lensdiff: error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks (every id that a `requires` or
    /// `conflicts_with` names exists, groups are sound); they run in debug builds.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn clap_messages_become_one_line() {
        let text = "error: the following required arguments were not provided:\n  \
                    <--e1 <E1>|--catalogue <CATALOGUE>>\n  --out <OUT>\n\nUsage: lensdiff wiener\n";
        assert_eq!(
            super::one_line(text),
            "the following required arguments were not provided: \
             <--e1 <E1>|--catalogue <CATALOGUE>>, --out <OUT>"
        );
        assert_eq!(
            super::one_line("error: unexpected argument '--x' found\n\n  tip: ...\n"),
            "unexpected argument '--x' found"
        );
    }
}
