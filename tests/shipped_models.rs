//! The models shipped in `models/` (issue #18): every file loads, its metadata
//! says what it is, and its held-out table is the one its card in
//! models/README.md quotes.
//!
//! The held-out evaluation is deterministic: `lensdiff train` keeps fixed
//! held-out maps (realisations of the training field reserved for it) with
//! fixed noise (`Trainer::heldout_loss`), and both are rebuilt here from the
//! file's `training` metadata. So the recomputed mean squared errors must
//! equal the card's to the precision it prints (three significant digits:
//! half a unit of the third digit is at most 0.5% of the value); the
//! evaluation's own rounding differences between CPUs and thread counts are
//! about 1e-6 relative. There is no Monte-Carlo error to allow for beyond
//! that: the same maps, the same noise.

mod common;

use lensdiff::fields::LogNormal;
use lensdiff::nn::{Dims4, UNetConfig};
use lensdiff::prior::train::{TrainConfig, Trainer, TrainingData};
use lensdiff::prior::{Denoiser, GaussianPrior, Prior};
use lensdiff::spectrum::ClTable;
use lensdiff::Grid;

/// The `__metadata__` of a safetensors file.
fn metadata(bytes: &[u8]) -> serde_json::Map<String, serde_json::Value> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["__metadata__"].as_object().unwrap().clone()
}

/// JSON held in a metadata string.
fn json(meta: &serde_json::Map<String, serde_json::Value>, key: &str) -> serde_json::Value {
    let s = meta
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("metadata {key:?} missing"));
    serde_json::from_str(s).unwrap_or_else(|e| panic!("metadata {key:?}: {e}"))
}

/// The rows `(σ/σ_d, network MSE, Wiener MSE)` of the held-out table in the
/// card section of `file` (a `## \`file\`` heading of models/README.md).
fn card_rows(card: &str, file: &str) -> Vec<(f64, f64, f64)> {
    let head = format!("## `{file}`");
    let start = card
        .find(&head)
        .unwrap_or_else(|| panic!("models/README.md has no section {head}"));
    let section = &card[start + head.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let rows: Vec<(f64, f64, f64)> = section
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| σ"))
        .filter_map(|l| {
            let c: Vec<f64> = l
                .trim_matches('|')
                .split('|')
                .map(|x| x.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .ok()?;
            (c.len() == 5).then(|| (c[0], c[2], c[3]))
        })
        .collect();
    assert!(!rows.is_empty(), "no held-out table under {head}");
    rows
}

/// The training data a model's `training.data` description names (only the
/// kinds shipped so far; a new kind must be added here).
fn training_data(description: &str, grid: &Grid) -> TrainingData {
    // "log-normal fields (lambda 0.03), seed 1"
    let num = |after: &str, until: char| -> f64 {
        let i = description
            .find(after)
            .unwrap_or_else(|| panic!("cannot rebuild the training data of {description:?}"))
            + after.len();
        description[i..]
            .split(until)
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert!(
        description.starts_with("log-normal fields"),
        "cannot rebuild the training data of {description:?}: extend tests/shipped_models.rs"
    );
    let power = ClTable::default_kappa().pixel_power(grid);
    TrainingData::LogNormal {
        field: LogNormal::new(grid, &power, num("(lambda ", ')')).unwrap(),
        seed: num("seed ", ',') as u64,
    }
}

/// Within the card's printed precision (module docs).
fn agrees(got: f64, card: f64) -> bool {
    (got - card).abs() <= 0.005 * card.abs()
}

#[test]
fn every_shipped_model_loads_and_reproduces_its_card() {
    let dir = common::root().join("models");
    let card = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no model in {}", dir.display());
    for path in files {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let meta = metadata(&bytes);
        assert_eq!(
            meta.get("format").and_then(|v| v.as_str()),
            Some("lensdiff-denoiser-v1"),
            "{name}"
        );
        let den = Denoiser::load(&path).unwrap();
        let d = json(&meta, "denoiser");
        assert_eq!(d["kind"], den.meta().kind.name(), "{name}");
        assert_eq!(
            d["sigma_data"].as_f64(),
            Some(den.meta().sigma_data),
            "{name}"
        );
        let arch: UNetConfig = serde_json::from_value(json(&meta, "architecture")).unwrap();
        assert_eq!(&arch, den.unet().config(), "{name}");
        let training = json(&meta, "training");
        let cfg: TrainConfig = serde_json::from_value(training["config"].clone()).unwrap();
        let pixel = d["pixel_arcmin"].as_f64().unwrap();
        let grid = Grid::square(cfg.crop, pixel).unwrap();
        let data = training_data(training["data"].as_str().unwrap(), &grid);
        // a trainer at step 0: its EMA parameters are the file's
        let trainer = Trainer::new(den.clone(), data, cfg).unwrap();
        let net = trainer.heldout_loss(true).unwrap();
        let wiener = GaussianPrior::from_cl(grid, &ClTable::default_kappa()).unwrap();
        let wf = trainer
            .heldout_loss_of(&|x: &[f32], _d: Dims4, s: f64| {
                let mut o = vec![0.0f32; x.len()];
                wiener.denoise(x, s, &mut o)?;
                Ok(o)
            })
            .unwrap();
        let rows = card_rows(&card, &name);
        assert_eq!(rows.len(), net.len(), "{name}: held-out noise levels");
        let sd = den.meta().sigma_data;
        for (((s, card_net, card_wf), n), w) in rows.iter().zip(&net).zip(&wf) {
            eprintln!(
                "{name} σ/σ_d {s}: network {:.4e} (card {card_net:.3e}), Wiener {:.4e} (card {card_wf:.3e})",
                n.mse, w.mse
            );
            assert!((n.sigma / sd - s).abs() < 1e-9, "{name}: σ/σ_d {s}");
            assert!(
                agrees(n.mse, *card_net),
                "{name} σ/σ_d {s}: network MSE {} against the card's {card_net}",
                n.mse
            );
            assert!(
                agrees(w.mse, *card_wf),
                "{name} σ/σ_d {s}: Wiener MSE {} against the card's {card_wf}",
                w.mse
            );
            // the card's claim: the learned prior beats the Wiener denoiser
            assert!(
                n.mse < w.mse,
                "{name} σ/σ_d {s}: network no better than Wiener"
            );
        }
    }
}
