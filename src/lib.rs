//! # lensdiff
//!
//! Weak-lensing mass mapping as a Bayesian inverse problem: observed shear
//! `gamma = P kappa + n` (P the Kaiser–Squires operator, n per-pixel Gaussian
//! shape noise, masked pixels carrying no information).
//!
//! Posterior samples of kappa come from reverse diffusion: [`prior`] holds the
//! denoiser priors (Tweedie score), [`sampler`] the guidance schemes, the
//! integrators (Euler–Maruyama, predictor–corrector, Heun ODE, EDM, annealed
//! HMC), the exact oracles and the chain statistics (docs/sampling.md).
//!
//! The mass-mapping core:
//! - [`grid`]: the flat-sky periodic grid and its Fourier modes;
//! - [`fft`]: batched real-to-complex 2-D FFT plans;
//! - [`lensing`]: the Kaiser–Squires operator, its adjoint and E/B inversion;
//! - [`noise`]: per-pixel noise models and masks;
//! - [`catalogue`]: binning of galaxy catalogues into shear maps;
//! - [`spectrum`]: power spectra (C_ell tables, pixel power maps, estimators);
//! - [`fields`]: Gaussian and log-normal random fields, simulated shear;
//! - [`rng`]: the counter-based Philox4x32-10 generator;
//! - [`baselines`]: Kaiser–Squires with smoothing and the Wiener filter;
//! - [`io`]: FITS and `.npy` files; [`plot`]: PNG figures;
//! - [`nn`]: neural-network layers and the U-Net with hand-written backward
//!   passes (the building blocks of the learned prior, which lives in
//!   [`prior`] with its training).
//!
//! Conventions are those of `docs/conventions.md` and are tested in `tests/conventions.rs`;
//! the layers and who owns what are in `docs/architecture.md` (checked by
//! `tests/architecture.rs`).

pub mod backend;
pub mod baselines;
pub mod capi;
pub mod catalogue;
pub mod cosmo;
pub mod distributed;
pub mod error;
pub mod fft;
pub mod fields;
pub mod grid;
pub mod io;
pub mod lensing;
pub mod metrics;
#[cfg(feature = "mpi")]
pub mod mpi_run;
pub mod nn;
pub mod noise;
pub mod plot;
pub mod prior;
pub mod rng;
pub mod sampler;
pub mod smoothing;
pub mod spectrum;
pub mod vmath;

pub use error::{Error, Result};
pub use grid::Grid;
