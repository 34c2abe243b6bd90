//! The sbi_lens log-normal forward model (Zeghal et al. 2024; sbi_lens commit b2517a4).
