//! Whole-network checks of the U-Net (`lensdiff::nn::unet`): the hand-written
//! backward pass against central finite differences in f64, parameter layout,
//! shift equivariance and the sizes of the named configurations.
//!
//! Gradient bound, as in `tests/nn_layers.rs`: `max_i |fd_i - g_i| / max_i |g_i| < 1e-6`
//! with `h = 1e-5`. The network is a composition of smooth layers with O(1)
//! random parameters; truncation (`h² |L'''| / 6 ~ 1e-10`) and rounding
//! (`ε |L| / h ~ 1e-10`) errors sit four orders below the bound, while a wrong
//! term in any layer's backward pass shows up at 1e-2 or more.

mod common;

use lensdiff::nn::{Dims4, UNet, UNetConfig};

const H: f64 = 1e-5;
const FD_TOL: f64 = 1e-6;

use common::{dot, SplitMix as Rng};

fn tiny(padding: &str, levels: usize) -> UNetConfig {
    UNetConfig {
        channels: [4, 6, 8][..levels].to_vec(),
        blocks: 2,
        groups: 2,
        embed_freqs: 3,
        embed_dim: 5,
        padding: padding.into(),
        joint_params: 0,
        ..UNetConfig::demo()
    }
}

fn grad_check(cfg: UNetConfig, seed: u64) {
    let net = UNet::new(cfg).unwrap();
    let mut rng = Rng(seed);
    let dims = Dims4::new(2, 1, 8, 4);
    // random O(1) parameters (the real initialisation zeroes some layers, which
    // would hide their gradients), scaled so activations stay O(1)
    let p: Vec<f64> = rng.vec(net.n_params()).iter().map(|v| 0.5 * v).collect();
    let x = rng.vec(dims.len());
    let sigma = [0.3, 2.5];
    let r = rng.vec(dims.len());
    let (y, cache) = net.forward_cached(&p, &x, dims, &sigma).unwrap();
    assert_eq!(y.len(), dims.len());
    let mut g = vec![0.0; net.n_params()];
    let dx = net.backward(&p, &cache, &r, Some(&mut g)).unwrap();
    // input-only backward gives the same dx
    let dx2 = net.backward(&p, &cache, &r, None).unwrap();
    assert_eq!(dx, dx2);
    let loss = |pp: &[f64], xx: &[f64]| dot(&r, &net.forward(pp, xx, dims, &sigma).unwrap());
    common::fd_check("dx", &x, &dx, H, FD_TOL, |t| loss(&p, t));
    common::fd_check("dtheta", &p, &g, H, FD_TOL, |t| loss(t, &x));
    // every named parameter receives some gradient
    for s in net.layout() {
        let m = g[s.offset..][..s.len]
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(m > 0.0, "no gradient reaches {}", s.name);
    }
}

#[test]
fn unet_gradients_periodic_three_levels() {
    grad_check(tiny("periodic", 3), 1);
}

#[test]
fn unet_gradients_zero_padding_two_levels() {
    grad_check(tiny("zero", 2), 2);
}

/// Strides other than the default (level 0 pooled, so the input
/// convolution's output joins before the output convolution; a level at the
/// resolution of the one above) and wider input and output kernels.
#[test]
fn unet_gradients_with_strides_and_wide_kernels() {
    let cfg = UNetConfig {
        strides: vec![2, 1, 2],
        in_kernel: 5,
        out_kernel: 5,
        ..tiny("periodic", 3)
    };
    assert_eq!(cfg.side_multiple(), 4);
    grad_check(cfg, 3);
    let cfg = UNetConfig {
        strides: vec![1, 1],
        in_kernel: 7,
        out_kernel: 1,
        ..tiny("zero", 2)
    };
    assert_eq!(cfg.side_multiple(), 1);
    grad_check(cfg, 4);
}

/// A joint network (`joint_params = 2`): the loss `<r, F_k> + <r_u, F_u>`
/// differentiated in `x`, `u` and every parameter, against central differences
/// (same bound as the map-only network).
fn joint_grad_check(levels: usize, seed: u64) {
    joint_grad_check_of(tiny("periodic", levels), seed)
}

fn joint_grad_check_of(base: UNetConfig, seed: u64) {
    let cfg = UNetConfig {
        joint_params: 2,
        ..base.clone()
    };
    let net = UNet::new(cfg).unwrap();
    let mut rng = Rng(seed);
    let dims = Dims4::new(2, 1, 8, 4);
    let p: Vec<f64> = rng.vec(net.n_params()).iter().map(|v| 0.5 * v).collect();
    let x = rng.vec(dims.len());
    let u = rng.vec(4);
    let sigma = [0.3, 2.5];
    let (r, r_u) = (rng.vec(dims.len()), rng.vec(4));
    let (y, f_u, cache) = net.forward_joint_cached(&p, &x, dims, &sigma, &u).unwrap();
    assert_eq!((y.len(), f_u.len()), (dims.len(), 4));
    let mut g = vec![0.0; net.n_params()];
    let (dx, du) = net
        .backward_joint(&p, &cache, &r, &r_u, Some(&mut g))
        .unwrap();
    let (dx2, du2) = net.backward_joint(&p, &cache, &r, &r_u, None).unwrap();
    assert_eq!((&dx, &du), (&dx2, &du2), "input-only backward");
    let loss = |pp: &[f64], xx: &[f64], uu: &[f64]| {
        let (y, f, _) = net.forward_joint_cached(pp, xx, dims, &sigma, uu).unwrap();
        dot(&r, &y) + dot(&r_u, &f)
    };
    common::fd_check("dx", &x, &dx, H, FD_TOL, |t| loss(&p, t, &u));
    common::fd_check("du", &u, &du, H, FD_TOL, |t| loss(&p, &x, t));
    common::fd_check("dtheta", &p, &g, H, FD_TOL, |t| loss(t, &x, &u));
    for s in net.layout() {
        let m = g[s.offset..][..s.len]
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(m > 0.0, "no gradient reaches {}", s.name);
    }
    // the map-only entry points refuse a joint network, and the reverse
    assert!(net.forward(&p, &x, dims, &sigma).is_err());
    assert!(net.backward(&p, &cache, &r, None).is_err());
    let map_only = UNet::new(base).unwrap();
    let pm = vec![0.0; map_only.n_params()];
    assert!(map_only
        .forward_joint_cached(&pm, &x, dims, &sigma, &u)
        .is_err());
}

#[test]
fn joint_unet_gradients_two_levels() {
    joint_grad_check(2, 11);
}

#[test]
fn joint_unet_gradients_with_strides() {
    let cfg = UNetConfig {
        strides: vec![2, 2, 1],
        in_kernel: 3,
        out_kernel: 5,
        ..tiny("periodic", 3)
    };
    joint_grad_check_of(cfg, 12);
}

#[test]
fn joint_unet_with_no_parameters_has_the_map_only_layout() {
    let map = UNet::new(UNetConfig::demo()).unwrap();
    let joint = UNet::new(UNetConfig {
        joint_params: 3,
        ..UNetConfig::demo()
    })
    .unwrap();
    let names = |n: &UNet| {
        n.layout()
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    };
    let (a, b) = (names(&map), names(&joint));
    assert!(a.iter().all(|n| b.contains(n)), "joint keeps every name");
    assert!(b.contains(&"head.mlp2.weight".to_string()));
    // the parameter head starts at zero: F_u = 0 at initialisation
    let p = joint.init_params(5);
    let dims = Dims4::new(2, 1, 16, 16);
    let (_, f_u, _) = joint
        .forward_joint_cached(&p, &vec![0.3f32; 512], dims, &[0.5, 2.0], &[0.1f32; 6])
        .unwrap();
    assert!(f_u.iter().all(|&v| v == 0.0));
    let too_many = UNetConfig {
        joint_params: 7,
        ..UNetConfig::demo()
    };
    assert!(UNet::new(too_many).is_err());
}

#[test]
fn periodic_unet_is_equivariant_under_even_shifts() {
    // Pooling by 2 at L-1 levels makes the network equivariant under cyclic
    // shifts by multiples of 2^(L-1) (exactly, up to rounding).
    let net = UNet::new(tiny("periodic", 2)).unwrap();
    let mut rng = Rng(3);
    let p: Vec<f64> = rng.vec(net.n_params()).iter().map(|v| 0.5 * v).collect();
    let dims = Dims4::new(1, 1, 8, 8);
    let x = rng.vec(64);
    let roll = |v: &[f64]| -> Vec<f64> {
        (0..64)
            .map(|i| v[((i / 8 + 8 - 2) % 8) * 8 + (i % 8 + 8 - 4) % 8])
            .collect()
    };
    let y = net.forward(&p, &x, dims, &[0.7]).unwrap();
    let ys = net.forward(&p, &roll(&x), dims, &[0.7]).unwrap();
    let err = roll(&y)
        .iter()
        .zip(&ys)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(err < 1e-12, "shift equivariance error {err:.2e}");
}

#[test]
fn initial_network_outputs_zero_and_layout_is_contiguous() {
    let net = UNet::new(UNetConfig::demo()).unwrap();
    let p = net.init_params(7);
    assert_eq!(p.len(), net.n_params());
    assert_eq!(p, net.init_params(7), "initialisation is deterministic");
    let mut next = 0;
    for s in net.layout() {
        assert_eq!(s.offset, next, "{}", s.name);
        next += s.len;
    }
    assert_eq!(next, net.n_params());
    let dims = Dims4::new(1, 1, 16, 16);
    let y = net.forward(&p, &vec![0.5f32; 256], dims, &[1.0]).unwrap();
    assert!(y.iter().all(|&v| v == 0.0), "zero-initialised output layer");
}

#[test]
fn named_configurations_have_the_documented_sizes() {
    let demo = UNet::new(UNetConfig::demo()).unwrap().n_params();
    let remy = UNet::new(UNetConfig::remy_2023()).unwrap().n_params();
    let uresnet = UNet::new(UNetConfig::uresnet18()).unwrap();
    let u18 = uresnet.n_params();
    eprintln!("demo {demo} parameters, remy_2023 {remy}, uresnet18 {u18}");
    // 4 levels entered with strides 2, 2, 2, 1: sides multiples of 8
    assert_eq!(UNetConfig::uresnet18().side_multiple(), 8);
    assert_eq!(UNetConfig::remy_2023().side_multiple(), 8);
    // the output convolution reads the 2 x 32 joined channels, 5 x 5
    let out = uresnet
        .layout()
        .iter()
        .find(|s| s.name == "conv_out.weight");
    assert_eq!(out.map(|s| s.shape.clone()), Some(vec![1, 64, 5, 5]));
    let inp = uresnet.layout().iter().find(|s| s.name == "conv_in.weight");
    assert_eq!(inp.map(|s| s.shape.clone()), Some(vec![32, 1, 7, 7]));
    // 2 672 993: the paper's network has 3.14 M (batch norm, projections in
    // every first block, its own decoder widths)
    assert!((2_400_000..3_000_000).contains(&u18), "uresnet18 has {u18}");
    // default strides and kernels stay out of the stored JSON (files written
    // before they existed read the same), the others round-trip
    let json = serde_json::to_string(&UNetConfig::remy_2023()).unwrap();
    assert!(
        !json.contains("strides") && !json.contains("kernel"),
        "{json}"
    );
    let json = serde_json::to_string(&UNetConfig::uresnet18()).unwrap();
    let back: UNetConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, UNetConfig::uresnet18());
    assert!((20_000..100_000).contains(&demo), "demo has {demo}");
    // Remy et al. 2023: 3.14 M parameters
    assert!(
        (2_900_000..3_400_000).contains(&remy),
        "remy_2023 has {remy}"
    );
}

#[test]
fn bad_inputs_are_errors() {
    let net = UNet::new(UNetConfig::demo()).unwrap();
    let p = net.init_params(1);
    let x = vec![0.0f32; 2 * 15 * 16];
    assert!(net
        .forward(&p, &x, Dims4::new(2, 1, 15, 16), &[1.0, 1.0])
        .is_err());
    let x = vec![0.0f32; 2 * 16 * 16];
    assert!(net
        .forward(&p, &x, Dims4::new(2, 1, 16, 16), &[1.0])
        .is_err());
    assert!(net
        .forward(&p, &x, Dims4::new(2, 1, 16, 16), &[1.0, -1.0])
        .is_err());
    assert!(net
        .forward(&p[1..], &x, Dims4::new(2, 1, 16, 16), &[1.0, 1.0])
        .is_err());
    let mut cfg = UNetConfig::demo();
    cfg.groups = 3;
    assert!(UNet::new(cfg).is_err());
    let mut cfg = UNetConfig::demo();
    cfg.padding = "reflect".into();
    assert!(UNet::new(cfg).is_err());
    for (strides, k_in, k_out) in [
        (vec![1], 3, 3),
        (vec![1, 3], 3, 3),
        (vec![0, 2], 3, 3),
        (vec![], 4, 3),
        (vec![], 3, 0),
        (vec![], 17, 3),
    ] {
        let cfg = UNetConfig {
            strides,
            in_kernel: k_in,
            out_kernel: k_out,
            ..UNetConfig::demo()
        };
        assert!(UNet::new(cfg.clone()).is_err(), "{cfg:?}");
    }
    // a uresnet18 needs sides that are multiples of 8
    let net = UNet::new(UNetConfig::uresnet18()).unwrap();
    let p = net.init_params(1);
    let x = vec![0.0f32; 12 * 12];
    assert!(net
        .forward(&p, &x, Dims4::new(1, 1, 12, 12), &[1.0])
        .is_err());
}
