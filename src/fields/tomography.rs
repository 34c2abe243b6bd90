//! Tomographic Gaussian and log-normal fields: several source bins with their auto and cross spectra.
