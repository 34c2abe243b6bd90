//! Residual U-Net `F(x, σ)` for single-channel maps, conditioned on the noise level.
//!
//! The architecture follows the score networks of Ho et al. 2020 / Song et al.
//! 2021 as used for mass maps by Remy et al. 2023 (A&A 672, A51), in the EDM
//! layout of Karras et al. 2022 (the preconditioning lives in
//! [`crate::prior::denoiser`]):
//!
//! ```text
//! e      = silu(L2 silu(L1 fourier(ln σ)))                 noise embedding, [n][E]
//! h      = conv_in(x)                                      1 → C_0 channels, k_in × k_in
//! level l = 0 … L-1:  if s_l = 2: h = pool2(h);  h = ResBlock(h, e) × blocks;  skip_l = h
//! level l = L-2 … 0:  if s_{l+1} = 2: h = up2(h);  h = [h, skip_l];  h = ResBlock(h, e) × blocks
//! if s_0 = 2:          h = [up2(h), conv_in(x)]            2 C_0 channels
//! F      = conv_out(silu(GN(h)))                           → 1 channel, k_out × k_out
//!
//! ResBlock(x, e), C_in → C_out:
//!   h  = conv1(silu(GN1(x)))
//!   (s, t) = L_e(e)                                        per-channel scale, shift
//!   h  = conv2(silu(GN2(h) ⊙ (1 + s) + t))
//!   out = (skip(x) + h) / √2                               skip = 1×1 conv if C_in ≠ C_out
//! ```
//!
//! A *joint* network (`joint_params = p > 0`, issue #15) also takes the
//! standardised parameters `u` (`[n][p]`, already scaled by `c_in`) and returns
//! a parameter output `F_u` (`[n][p]`) beside the map:
//!
//! ```text
//! e      = silu(L2 silu(L1 [fourier(ln σ), u]))            u enters with the noise level
//! h_D    = the deepest level's output                      [n][C_{L-1}][h'][w']
//! b      = [mean(h_D), mean(h_D²)] over pixels             [n][2 C_{L-1}]
//! F_u    = H2 silu(H1 [b, e])                              H2 zero-initialised
//! ```
//!
//! so `u` conditions every block through the same per-block scale/shift as σ,
//! and the parameter head reads the whole map through global means of the
//! deepest features (the JADE design, Remy, Chang & Willett 2026). The second
//! moments are there because GroupNorm removes the amplitude of every
//! nonlinear feature: without them the head would see the map's amplitude
//! (what `sigma8` sets) only through means of linear features, which vanish
//! for a zero-mean field. A network
//! with `p = 0` has exactly the layout of a map-only network.
//!
//! The strides `s_l` are 1 or 2 (default `s_0 = 1`, then 2: the layout of
//! Ho et al.; [`UNetConfig::uresnet18`] enters every level but the last with
//! 2, as Remy et al.'s network does), and `k_in = k_out = 3` unless set.
//! All convolutions share one padding rule (periodic or zero). Maps must
//! have sides divisible by [`UNetConfig::side_multiple`]. Activations are NCHW (`[n][c][y][x]`),
//! the layout the CUDA kernels use.
//!
//! Parameters live in one flat vector (see [`UNet::layout`]) so that the
//! optimiser, the EMA and the checkpoints treat them as one array; each
//! parameter has a name following [`super::weights`] (`down.1.0.conv1.weight`,
//! `up.0.1.norm2.gamma`, `embed.mlp1.bias`, ...).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::act::{silu_backward, silu_forward};
use super::conv::{Conv2d, Padding};
use super::embed::FourierEmbedding;
use super::linear::Linear;
use super::norm::{GroupNorm, GroupNormCache};
use super::resample::{
    avg_pool2_backward, avg_pool2_forward, upsample2_backward, upsample2_forward,
};
use super::workspace::{copied, recycle, uncleared};
use super::{check_len, Dims4, Real, Weights};
use crate::error::{Error, Result};
use crate::rng::{Philox, Stream};

/// The most parameters a joint network takes (the joint state's limit,
/// `prior::joint::MAX_PARAMS`).
pub const MAX_JOINT_PARAMS: usize = 6;

/// `1/√2`, the residual scaling of a block.
const INV_SQRT2: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// Architecture of a [`UNet`] (stored as JSON in the weights' metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// Channels per resolution level, finest first (`L = channels.len()` levels).
    pub channels: Vec<usize>,
    /// Residual blocks per level, on the way down and on the way up.
    pub blocks: usize,
    /// GroupNorm groups; must divide every channel count.
    pub groups: usize,
    /// Number `F` of Fourier frequencies of the noise embedding (2F features).
    pub embed_freqs: usize,
    /// Width `E` of the noise-embedding MLP.
    pub embed_dim: usize,
    /// Convolution boundary rule: `"periodic"` or `"zero"`.
    pub padding: String,
    /// Number `p` of parameters of a joint network (input `u` and output
    /// `F_u`); 0 for a map-only network.
    #[serde(default)]
    pub joint_params: usize,
    /// Downsampling factor at the entry of each level, 1 or 2 (average
    /// pooling; the way up mirrors it with nearest upsampling). Empty means
    /// `[1, 2, 2, ...]`: level 0 at full resolution, every deeper level at
    /// half the one above. A 2 at level 0 pools the input convolution's
    /// output, which the way up concatenates back at full resolution before
    /// the output convolution.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strides: Vec<usize>,
    /// Kernel size of the input convolution (odd).
    #[serde(default = "three", skip_serializing_if = "is_three")]
    pub in_kernel: usize,
    /// Kernel size of the output convolution (odd).
    #[serde(default = "three", skip_serializing_if = "is_three")]
    pub out_kernel: usize,
}

fn three() -> usize {
    3
}

fn is_three(k: &usize) -> bool {
    *k == 3
}

impl UNetConfig {
    /// The small network of the demo and the tests (≈36 k parameters):
    /// 2 levels of 16 and 32 channels, one block per level.
    pub fn demo() -> Self {
        UNetConfig {
            channels: vec![16, 32],
            blocks: 1,
            groups: 4,
            embed_freqs: 8,
            embed_dim: 32,
            padding: "periodic".into(),
            joint_params: 0,
            strides: Vec::new(),
            in_kernel: 3,
            out_kernel: 3,
        }
    }

    /// A network of the size of Remy et al. 2023's UResNet (≈3.1 M parameters):
    /// 4 levels of 32, 64, 128, 176 channels, two blocks per level.
    pub fn remy_2023() -> Self {
        UNetConfig {
            channels: vec![32, 64, 128, 176],
            blocks: 2,
            groups: 8,
            embed_freqs: 16,
            embed_dim: 128,
            padding: "periodic".into(),
            joint_params: 0,
            strides: Vec::new(),
            in_kernel: 3,
            out_kernel: 3,
        }
    }

    /// The layout of Remy et al. 2023's UResNet18 (A&A 672, A51; their
    /// `SmallUResNet` code, with the strides of the paper's network):
    /// a 7 × 7 input convolution to 32 channels, 4 levels of 32, 64, 128, 128
    /// channels entered with strides 2, 2, 2, 1 (the heavy convolutions run
    /// at 1/2 to 1/8 resolution), two residual blocks per level, a mirrored
    /// way up and a 5 × 5 output convolution. Blocks are lensdiff's (GroupNorm
    /// and the noise embedding's scale and shift instead of batch norm and a
    /// noise channel), so the count differs from the paper's network.
    pub fn uresnet18() -> Self {
        UNetConfig {
            channels: vec![32, 64, 128, 128],
            blocks: 2,
            groups: 8,
            embed_freqs: 16,
            embed_dim: 128,
            padding: "periodic".into(),
            joint_params: 0,
            strides: vec![2, 2, 2, 1],
            in_kernel: 7,
            out_kernel: 5,
        }
    }

    /// The downsampling factor at the entry of each level
    /// ([`UNetConfig::strides`], the default filled in).
    pub fn level_strides(&self) -> Vec<usize> {
        if self.strides.is_empty() {
            (0..self.channels.len())
                .map(|l| if l == 0 { 1 } else { 2 })
                .collect()
        } else {
            self.strides.clone()
        }
    }

    /// Channels into the output normalisation and convolution: `C_0`, or
    /// `2 C_0` where level 0 is entered with stride 2 (the input
    /// convolution's output joins there).
    fn out_channels(&self) -> usize {
        if self.level_strides().first() == Some(&2) {
            2 * self.channels[0]
        } else {
            self.channels[0]
        }
    }

    /// The convolution padding rule.
    pub fn padding(&self) -> Result<Padding> {
        Padding::from_name(&self.padding)
    }

    /// Checks every field; the error names the offending one.
    pub fn validate(&self) -> Result<()> {
        if self.channels.is_empty() || self.channels.len() > 8 {
            return Err(Error::invalid("channels", "need 1 to 8 levels"));
        }
        if self.channels.iter().any(|&c| c == 0 || c > 4096) {
            return Err(Error::invalid(
                "channels",
                "every level needs 1..=4096 channels",
            ));
        }
        if self.blocks == 0 || self.blocks > 16 {
            return Err(Error::invalid("blocks", "need 1..=16 blocks per level"));
        }
        if self.groups == 0 || self.channels.iter().any(|c| c % self.groups != 0) {
            return Err(Error::invalid(
                "groups",
                format!(
                    "must be positive and divide every channel count {:?}, got {}",
                    self.channels, self.groups
                ),
            ));
        }
        if self.embed_freqs == 0 || self.embed_freqs > 1024 {
            return Err(Error::invalid("embed_freqs", "need 1..=1024 frequencies"));
        }
        if self.embed_dim == 0 || self.embed_dim > 65536 {
            return Err(Error::invalid("embed_dim", "need 1..=65536 features"));
        }
        if !self.strides.is_empty() {
            if self.strides.len() != self.channels.len() {
                return Err(Error::invalid(
                    "strides",
                    format!(
                        "need one stride per level ({} levels), got {:?}",
                        self.channels.len(),
                        self.strides
                    ),
                ));
            }
            if self.strides.iter().any(|s| !matches!(s, 1 | 2)) {
                return Err(Error::invalid(
                    "strides",
                    format!("every stride must be 1 or 2, got {:?}", self.strides),
                ));
            }
        }
        for (name, k) in [
            ("in_kernel", self.in_kernel),
            ("out_kernel", self.out_kernel),
        ] {
            if k % 2 == 0 || k > 15 {
                return Err(Error::invalid(
                    name,
                    format!("need an odd kernel size from 1 to 15, got {k}"),
                ));
            }
        }
        if self.joint_params > MAX_JOINT_PARAMS {
            return Err(Error::invalid(
                "joint_params",
                format!(
                    "a joint network takes 0 to {MAX_JOINT_PARAMS} parameters, got {}",
                    self.joint_params
                ),
            ));
        }
        self.padding()?;
        Ok(())
    }

    /// Map sides must be multiples of this (`2^(L-1)` with the default
    /// strides; 2 to the number of strides of 2).
    pub fn side_multiple(&self) -> usize {
        1 << self.level_strides().iter().filter(|&&s| s == 2).count()
    }

    /// Fails unless `ny x nx` maps suit the network (sides multiples of
    /// [`UNetConfig::side_multiple`]).
    pub fn check_map_size(&self, ny: usize, nx: usize) -> Result<()> {
        let m = self.side_multiple();
        if !nx.is_multiple_of(m) || !ny.is_multiple_of(m) {
            return Err(Error::invalid(
                "grid",
                format!("{nx}x{ny} maps do not suit this network: sides must be multiples of {m}"),
            ));
        }
        Ok(())
    }

    /// The Fourier frequencies of the embedding: geometric from 1/64 to 1/2
    /// cycles per unit of `ln σ`.
    pub fn embed_frequencies(&self) -> Vec<f64> {
        let f = self.embed_freqs;
        let (lo, hi) = (1.0f64 / 64.0, 0.5f64);
        (0..f)
            .map(|i| {
                let t = if f > 1 {
                    i as f64 / (f - 1) as f64
                } else {
                    0.0
                };
                lo * (hi / lo).powf(t)
            })
            .collect()
    }
}

/// One named parameter tensor inside the flat parameter vector.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSlot {
    /// Name in the weights file.
    pub name: String,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// First element in the flat vector.
    pub offset: usize,
    /// Element count.
    pub len: usize,
    /// How it is initialised.
    init: Init,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Init {
    /// Normal with standard deviation `1/sqrt(fan_in)`.
    Fan(usize),
    Zero,
    One,
}

#[derive(Default)]
struct LayoutBuilder {
    slots: Vec<ParamSlot>,
    total: usize,
}

impl LayoutBuilder {
    fn add(&mut self, name: String, shape: Vec<usize>, init: Init) -> usize {
        let len = shape.iter().product();
        let offset = self.total;
        self.total += len;
        self.slots.push(ParamSlot {
            name,
            shape,
            offset,
            len,
            init,
        });
        offset
    }

    fn conv(
        &mut self,
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        pad: Padding,
        zero: bool,
    ) -> Result<ConvP> {
        let conv = Conv2d::new(cin, cout, k, pad)?;
        let init = if zero {
            Init::Zero
        } else {
            Init::Fan(cin * k * k)
        };
        let w = self.add(format!("{name}.weight"), vec![cout, cin, k, k], init);
        let b = self.add(format!("{name}.bias"), vec![cout], Init::Zero);
        Ok(ConvP { conv, w, b })
    }

    fn norm(&mut self, name: &str, c: usize, groups: usize) -> Result<NormP> {
        let gn = GroupNorm::new(c, groups)?;
        let g = self.add(format!("{name}.gamma"), vec![c], Init::One);
        let b = self.add(format!("{name}.beta"), vec![c], Init::Zero);
        Ok(NormP { gn, g, b })
    }

    fn linear(&mut self, name: &str, fin: usize, fout: usize, zero: bool) -> Result<LinP> {
        let lin = Linear::new(fin, fout)?;
        let init = if zero { Init::Zero } else { Init::Fan(fin) };
        let w = self.add(format!("{name}.weight"), vec![fout, fin], init);
        let b = self.add(format!("{name}.bias"), vec![fout], Init::Zero);
        Ok(LinP { lin, w, b })
    }

    fn block(
        &mut self,
        name: &str,
        cin: usize,
        cout: usize,
        cfg: &UNetConfig,
        pad: Padding,
    ) -> Result<ResBlock> {
        Ok(ResBlock {
            cin,
            cout,
            norm1: self.norm(&format!("{name}.norm1"), cin, cfg.groups)?,
            conv1: self.conv(&format!("{name}.conv1"), cin, cout, 3, pad, false)?,
            emb: self.linear(&format!("{name}.emb"), cfg.embed_dim, 2 * cout, true)?,
            norm2: self.norm(&format!("{name}.norm2"), cout, cfg.groups)?,
            conv2: self.conv(&format!("{name}.conv2"), cout, cout, 3, pad, false)?,
            skip: if cin != cout {
                Some(self.conv(&format!("{name}.skip"), cin, cout, 1, pad, false)?)
            } else {
                None
            },
        })
    }
}

/// A convolution and the offsets of its weight and bias.
#[derive(Clone, Debug)]
struct ConvP {
    conv: Conv2d,
    w: usize,
    b: usize,
}

#[derive(Clone, Debug)]
struct NormP {
    gn: GroupNorm,
    g: usize,
    b: usize,
}

#[derive(Clone, Debug)]
struct LinP {
    lin: Linear,
    w: usize,
    b: usize,
}

/// Parameter gradients being accumulated, or `None` for input-only backward passes.
type Grads<'a, T> = Option<&'a mut [T]>;

fn accumulate<T: Real>(g: &mut Grads<'_, T>, offset: usize, vals: &[T]) {
    if let Some(g) = g.as_deref_mut() {
        g[offset..offset + vals.len()]
            .iter_mut()
            .zip(vals)
            .for_each(|(a, v)| *a = *a + *v);
    }
}

impl ConvP {
    fn forward<T: Real>(&self, p: &[T], x: &[T], d: Dims4) -> Result<Vec<T>> {
        let c = &self.conv;
        self.conv.forward(
            x,
            d,
            &p[self.w..][..c.weight_len()],
            &p[self.b..][..c.out_ch()],
        )
    }

    /// Returns `dx`; adds `dw`, `db` into the gradients if requested.
    fn backward<T: Real>(
        &self,
        p: &[T],
        x: &[T],
        d: Dims4,
        dy: &[T],
        g: &mut Grads<'_, T>,
    ) -> Result<Vec<T>> {
        let c = &self.conv;
        let w = &p[self.w..][..c.weight_len()];
        if g.is_some() {
            let (dw, db) = c.weight_gradient(x, d, dy)?;
            accumulate(g, self.w, &dw);
            accumulate(g, self.b, &db);
            recycle(dw);
        }
        c.backward_input(d, w, dy)
    }
}

impl NormP {
    /// GroupNorm, FiLM (if `film`) and SiLU in one pass: `(z, silu(z), cache)`.
    fn forward_silu<T: Real>(
        &self,
        p: &[T],
        x: &[T],
        d: Dims4,
        film: Option<&[T]>,
    ) -> Result<(Vec<T>, Vec<T>, GroupNormCache)> {
        let c = self.gn.channels();
        self.gn
            .forward_silu(x, d, &p[self.g..][..c], &p[self.b..][..c], film)
    }

    /// Backward of [`NormP::forward_silu`]: returns `dx` and the FiLM
    /// gradient (empty without FiLM); adds `dγ`, `dβ` into the gradients.
    #[allow(clippy::too_many_arguments)]
    fn backward_silu<T: Real>(
        &self,
        p: &[T],
        x: &[T],
        d: Dims4,
        film: Option<&[T]>,
        cache: &GroupNormCache,
        z: &[T],
        dh: &[T],
        g: &mut Grads<'_, T>,
    ) -> Result<(Vec<T>, Vec<T>)> {
        let c = self.gn.channels();
        let (gamma, beta) = (&p[self.g..][..c], &p[self.b..][..c]);
        let (dx, dg, db, dfilm) = self
            .gn
            .backward_silu(x, d, gamma, beta, film, cache, z, dh)?;
        accumulate(g, self.g, &dg);
        accumulate(g, self.b, &db);
        Ok((dx, dfilm))
    }
}

impl LinP {
    fn forward<T: Real>(&self, p: &[T], x: &[T], n: usize) -> Result<Vec<T>> {
        let l = &self.lin;
        l.forward(
            x,
            n,
            &p[self.w..][..l.weight_len()],
            &p[self.b..][..l.out_features()],
        )
    }

    fn backward<T: Real>(
        &self,
        p: &[T],
        x: &[T],
        n: usize,
        dy: &[T],
        g: &mut Grads<'_, T>,
    ) -> Result<Vec<T>> {
        let l = &self.lin;
        if g.is_some() {
            let (dw, db) = l.weight_gradient(x, n, dy)?;
            accumulate(g, self.w, &dw);
            accumulate(g, self.b, &db);
            recycle(dw);
        }
        l.backward_input(x, n, &p[self.w..][..l.weight_len()], dy)
    }
}

#[derive(Clone, Debug)]
struct ResBlock {
    cin: usize,
    cout: usize,
    norm1: NormP,
    conv1: ConvP,
    emb: LinP,
    norm2: NormP,
    conv2: ConvP,
    skip: Option<ConvP>,
}

/// What a block's backward pass needs from its forward pass.
struct BlockCache<T: Real> {
    x: Vec<T>,
    din: Dims4,
    n1: GroupNormCache,
    a1: Vec<T>,
    h2: Vec<T>,
    h3: Vec<T>,
    n2: GroupNormCache,
    st: Vec<T>,
    h5: Vec<T>,
    h6: Vec<T>,
}

impl ResBlock {
    fn forward<T: Real>(
        &self,
        p: &[T],
        x: Vec<T>,
        din: Dims4,
        emb: &[T],
    ) -> Result<(Vec<T>, BlockCache<T>)> {
        let dout = Dims4::new(din.n, self.cout, din.h, din.w);
        let plane = din.plane();
        let (a1, h2, n1) = self.norm1.forward_silu(p, &x, din, None)?;
        let h3 = self.conv1.forward(p, &h2, din)?;
        let st = self.emb.forward(p, emb, din.n)?;
        // h4 = GN(h3) (not stored), h5 = h4 (1 + scale) + shift per (item,
        // channel) plane, h6 = SiLU(h5), in one pass
        let (h5, h6, n2) = self.norm2.forward_silu(p, &h3, dout, Some(&st))?;
        let h7 = self.conv2.forward(p, &h6, dout)?;
        let r = T::from_f64(INV_SQRT2);
        // out = (skip + h7) / sqrt 2, in h7's buffer
        let mut out = h7;
        let add_scaled = |out: &mut [T], a: &[T]| {
            out.par_chunks_mut(plane)
                .zip(a.par_chunks(plane))
                .for_each(|(o, a)| o.iter_mut().zip(a).for_each(|(o, a)| *o = (*a + *o) * r));
        };
        match &self.skip {
            Some(sk) => {
                let s = sk.forward(p, &x, din)?;
                add_scaled(&mut out, &s);
                recycle(s);
            }
            None => add_scaled(&mut out, &x),
        }
        let cache = BlockCache {
            x,
            din,
            n1,
            a1,
            h2,
            h3,
            n2,
            st,
            h5,
            h6,
        };
        Ok((out, cache))
    }

    /// Returns `dx` and adds this block's `∂L/∂e` into `demb`.
    fn backward<T: Real>(
        &self,
        p: &[T],
        c: &BlockCache<T>,
        emb: &[T],
        dout_: &[T],
        demb: &mut [T],
        g: &mut Grads<'_, T>,
    ) -> Result<Vec<T>> {
        let din = c.din;
        let dout = Dims4::new(din.n, self.cout, din.h, din.w);
        let plane = din.plane();
        let r = T::from_f64(INV_SQRT2);
        let mut d = uncleared(dout_.len());
        d.par_chunks_mut(plane)
            .zip(dout_.par_chunks(plane))
            .for_each(|(o, v)| o.iter_mut().zip(v).for_each(|(o, v)| *o = *v * r));
        let dh6 = self.conv2.backward(p, &c.h6, dout, &d, g)?;
        // SiLU, FiLM (∂L/∂scale = Σ dh5 h4, ∂L/∂shift = Σ dh5 per plane) and
        // GroupNorm backward in one pass
        let (dh3, dst) =
            self.norm2
                .backward_silu(p, &c.h3, dout, Some(&c.st), &c.n2, &c.h5, &dh6, g)?;
        recycle(dh6);
        let de = self.emb.backward(p, emb, din.n, &dst, g)?;
        demb.iter_mut().zip(&de).for_each(|(a, b)| *a = *a + *b);
        let dh2 = self.conv1.backward(p, &c.h2, din, &dh3, g)?;
        recycle(dh3);
        let (mut dx, _) = self
            .norm1
            .backward_silu(p, &c.x, din, None, &c.n1, &c.a1, &dh2, g)?;
        recycle(dh2);
        let add = |dx: &mut [T], b: &[T]| {
            dx.par_chunks_mut(plane)
                .zip(b.par_chunks(plane))
                .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a = *a + *b));
        };
        match &self.skip {
            Some(sk) => {
                let ds = sk.backward(p, &c.x, din, &d, g)?;
                add(&mut dx, &ds);
                recycle(ds);
            }
            None => add(&mut dx, &d),
        }
        recycle(d);
        Ok(dx)
    }
}

/// Channel concatenation `[a, b]` of two NCHW tensors with equal `n, h, w`.
fn concat<T: Real>(a: &[T], ca: usize, b: &[T], cb: usize, n: usize, plane: usize) -> Vec<T> {
    let c = ca + cb;
    let mut out = uncleared(n * c * plane);
    out.par_chunks_mut(plane).enumerate().for_each(|(idx, o)| {
        let (i, ch) = (idx / c, idx % c);
        o.copy_from_slice(if ch < ca {
            &a[(i * ca + ch) * plane..][..plane]
        } else {
            &b[(i * cb + ch - ca) * plane..][..plane]
        });
    });
    out
}

/// Inverse of [`concat`] for gradients: splits `[n][ca+cb]` planes into the two parts.
fn split<T: Real>(x: &[T], ca: usize, cb: usize, n: usize, plane: usize) -> (Vec<T>, Vec<T>) {
    let (mut a, mut b) = (uncleared(n * ca * plane), uncleared(n * cb * plane));
    for i in 0..n {
        let base = i * (ca + cb) * plane;
        a[i * ca * plane..][..ca * plane].copy_from_slice(&x[base..][..ca * plane]);
        b[i * cb * plane..][..cb * plane].copy_from_slice(&x[base + ca * plane..][..cb * plane]);
    }
    (a, b)
}

/// Backward of [`UNet::join`] for the gradient `dj` of the joined tensor:
/// `(∂L/∂h, ∂L/∂skip)` for `h` of `c_h` channels and the skip of dims
/// `skip_dims`.
fn unjoin<T: Real>(
    dj: &[T],
    c_h: usize,
    skip_dims: Dims4,
    stride: usize,
) -> Result<(Vec<T>, Vec<T>)> {
    let d = skip_dims;
    let (du, ds) = split(dj, c_h, d.c, d.n, d.plane());
    if stride != 2 {
        return Ok((du, ds));
    }
    let dh = upsample2_backward(Dims4::new(d.n, c_h, d.h / 2, d.w / 2), &du)?;
    recycle(du);
    Ok((dh, ds))
}

/// Per-channel means and mean squares of an NCHW tensor: `[n][2c]`, the
/// means of item `i` first, then its mean squares.
fn plane_moments<T: Real>(x: &[T], d: Dims4) -> Vec<T> {
    let inv = 1.0 / d.plane() as f64;
    let mut out = vec![T::default(); d.n * 2 * d.c];
    for (idx, c) in x.chunks(d.plane()).enumerate() {
        let (i, ch) = (idx / d.c, idx % d.c);
        let (s, s2) = c.iter().fold((0.0, 0.0), |(s, s2), v| {
            let v = v.to_f64();
            (s + v, s2 + v * v)
        });
        out[i * 2 * d.c + ch] = T::from_f64(s * inv);
        out[i * 2 * d.c + d.c + ch] = T::from_f64(s2 * inv);
    }
    out
}

/// Adds the gradient of [`plane_moments`] for `dm = ∂L/∂moments` into `dx`:
/// `∂L/∂x = (dm_mean + 2 x dm_square) / plane`.
fn plane_moments_backward<T: Real>(x: &[T], d: Dims4, dm: &[T], dx: &mut [T]) {
    let inv = 1.0 / d.plane() as f64;
    for (idx, (g, xc)) in dx
        .chunks_mut(d.plane())
        .zip(x.chunks(d.plane()))
        .enumerate()
    {
        let (i, ch) = (idx / d.c, idx % d.c);
        let a = dm[i * 2 * d.c + ch].to_f64() * inv;
        let b = 2.0 * dm[i * 2 * d.c + d.c + ch].to_f64() * inv;
        g.iter_mut()
            .zip(xc)
            .for_each(|(g, v)| *g = *g + T::from_f64(a + b * v.to_f64()));
    }
}

/// The U-Net: architecture plus parameter layout (parameters are passed in).
#[derive(Clone, Debug)]
pub struct UNet {
    config: UNetConfig,
    /// [`UNetConfig::level_strides`].
    strides: Vec<usize>,
    slots: Vec<ParamSlot>,
    n_params: usize,
    embed: FourierEmbedding,
    mlp1: LinP,
    mlp2: LinP,
    conv_in: ConvP,
    down: Vec<Vec<ResBlock>>,
    up: Vec<Vec<ResBlock>>,
    norm_out: NormP,
    conv_out: ConvP,
    /// The parameter head of a joint network.
    head: Option<Head>,
}

/// The parameter head of a joint network: `F_u = H2 silu(H1 [b, e])`.
#[derive(Clone, Debug)]
struct Head {
    h1: LinP,
    h2: LinP,
}

/// What the head's backward pass needs.
struct HeadCache<T: Real> {
    /// `[b, e]` per item.
    input: Vec<T>,
    /// The deepest level's output.
    deep: Vec<T>,
    z: Vec<T>,
    a: Vec<T>,
}

/// Activations saved by [`UNet::forward_cached`] for [`UNet::backward`].
pub struct UNetCache<T: Real> {
    dims: Dims4,
    x: Vec<T>,
    e0: Vec<T>,
    z1: Vec<T>,
    a1: Vec<T>,
    z2: Vec<T>,
    emb: Vec<T>,
    down: Vec<Vec<BlockCache<T>>>,
    down_dims: Vec<Dims4>,
    up: Vec<Vec<BlockCache<T>>>,
    hn: Vec<T>,
    nout: GroupNormCache,
    an: Vec<T>,
    ho: Vec<T>,
    head: Option<HeadCache<T>>,
}

// The caches give their activations back to the workspace pool when dropped
// (the next evaluation reuses them: `super::workspace`).
impl<T: Real> Drop for BlockCache<T> {
    fn drop(&mut self) {
        for v in [
            &mut self.x,
            &mut self.a1,
            &mut self.h2,
            &mut self.h3,
            &mut self.h5,
            &mut self.h6,
        ] {
            recycle(std::mem::take(v));
        }
    }
}

impl<T: Real> Drop for HeadCache<T> {
    fn drop(&mut self) {
        recycle(std::mem::take(&mut self.deep));
    }
}

impl<T: Real> Drop for UNetCache<T> {
    fn drop(&mut self) {
        for v in [&mut self.x, &mut self.hn, &mut self.an, &mut self.ho] {
            recycle(std::mem::take(v));
        }
    }
}

impl UNet {
    /// Builds the network for a validated configuration.
    pub fn new(config: UNetConfig) -> Result<Self> {
        config.validate()?;
        let pad = config.padding()?;
        let ch = &config.channels;
        let levels = ch.len();
        let mut b = LayoutBuilder::default();
        let embed = FourierEmbedding::new(config.embed_frequencies())?;
        let mlp1 = b.linear(
            "embed.mlp1",
            embed.dim() + config.joint_params,
            config.embed_dim,
            false,
        )?;
        let mlp2 = b.linear("embed.mlp2", config.embed_dim, config.embed_dim, false)?;
        let conv_in = b.conv("conv_in", 1, ch[0], config.in_kernel, pad, false)?;
        let mut down = Vec::with_capacity(levels);
        let mut cin = ch[0];
        for (l, &c) in ch.iter().enumerate() {
            let mut level = Vec::with_capacity(config.blocks);
            for i in 0..config.blocks {
                level.push(b.block(&format!("down.{l}.{i}"), cin, c, &config, pad)?);
                cin = c;
            }
            down.push(level);
        }
        let mut up = Vec::with_capacity(levels.saturating_sub(1));
        for l in (0..levels.saturating_sub(1)).rev() {
            let mut level = Vec::with_capacity(config.blocks);
            let mut cin = ch[l + 1] + ch[l];
            for i in 0..config.blocks {
                level.push(b.block(&format!("up.{l}.{i}"), cin, ch[l], &config, pad)?);
                cin = ch[l];
            }
            up.push(level);
        }
        // `up` was built deepest first; store it by level index.
        up.reverse();
        let c_out = config.out_channels();
        let norm_out = b.norm("norm_out", c_out, config.groups)?;
        let conv_out = b.conv("conv_out", c_out, 1, config.out_kernel, pad, true)?;
        let head = if config.joint_params > 0 {
            let deep = ch[levels - 1];
            let e = config.embed_dim;
            Some(Head {
                h1: b.linear("head.mlp1", 2 * deep + e, e, false)?,
                h2: b.linear("head.mlp2", e, config.joint_params, true)?,
            })
        } else {
            None
        };
        let strides = config.level_strides();
        Ok(UNet {
            config,
            strides,
            slots: b.slots,
            n_params: b.total,
            embed,
            mlp1,
            mlp2,
            conv_in,
            down,
            up,
            norm_out,
            conv_out,
            head,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// Number of parameters.
    pub fn n_params(&self) -> usize {
        self.n_params
    }

    /// Named slots of the flat parameter vector, in storage order.
    pub fn layout(&self) -> &[ParamSlot] {
        &self.slots
    }

    /// Deterministic initial parameters: weights normal with standard deviation
    /// `1/sqrt(fan_in)` (Philox stream `Training`, key `seed`, one counter
    /// block per slot), GroupNorm scales one, biases zero, and zero for the
    /// output convolution and the per-block embedding projections, so that
    /// `F ≡ 0` at initialisation.
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut p = vec![0.0f32; self.n_params];
        for (i, s) in self.slots.iter().enumerate() {
            let dst = &mut p[s.offset..][..s.len];
            match s.init {
                Init::Zero => {}
                Init::One => dst.fill(1.0),
                Init::Fan(fan) => {
                    Philox::new(seed, Stream::Training, u64::MAX, i as u64).fill_normal(dst);
                    let sd = 1.0 / (fan as f32).sqrt();
                    dst.iter_mut().for_each(|v| *v *= sd);
                }
            }
        }
        p
    }

    /// Checks the input shape: one channel, sides divisible by `2^(L-1)`.
    pub fn check_input(&self, dims: Dims4, x_len: usize, sigma_len: usize) -> Result<()> {
        super::check_tensor("x", dims, x_len)?;
        if dims.c != 1 {
            return Err(Error::shape(
                "x",
                "1 channel",
                format!("{} channels", dims.c),
            ));
        }
        let m = self.config.side_multiple();
        if !dims.h.is_multiple_of(m) || !dims.w.is_multiple_of(m) {
            return Err(Error::invalid(
                "x",
                format!(
                    "map sides {}x{} must be multiples of {m} for a {}-level U-Net",
                    dims.h,
                    dims.w,
                    self.config.channels.len()
                ),
            ));
        }
        check_len("sigma", dims.n, sigma_len)
    }

    /// `F(x, σ)` for a batch `x` of shape `[n][1][h][w]` and one `σ` per item
    /// (map-only networks).
    pub fn forward<T: Real>(
        &self,
        params: &[T],
        x: &[T],
        dims: Dims4,
        sigma: &[f64],
    ) -> Result<Vec<T>> {
        Ok(self.forward_cached(params, x, dims, sigma)?.0)
    }

    /// Forward pass that also returns the activations the backward pass needs
    /// (map-only networks; a joint network needs [`UNet::forward_joint_cached`]).
    pub fn forward_cached<T: Real>(
        &self,
        p: &[T],
        x: &[T],
        dims: Dims4,
        sigma: &[f64],
    ) -> Result<(Vec<T>, UNetCache<T>)> {
        if self.head.is_some() {
            return Err(Error::invalid(
                "u",
                format!(
                    "this is a joint network of {} parameters: it needs them as input",
                    self.config.joint_params
                ),
            ));
        }
        let (y, _, cache) = self.run_forward(p, x, dims, sigma, &[])?;
        Ok((y, cache))
    }

    /// `(F_k, F_u)` of a joint network for maps `x` (`[n][1][h][w]`), one `σ`
    /// and one parameter vector `u` (`[n][p]`) per item.
    pub fn forward_joint_cached<T: Real>(
        &self,
        p: &[T],
        x: &[T],
        dims: Dims4,
        sigma: &[f64],
        u: &[T],
    ) -> Result<(Vec<T>, Vec<T>, UNetCache<T>)> {
        let np = self.config.joint_params;
        if np == 0 {
            return Err(Error::invalid(
                "u",
                "this is a map-only network: it takes no parameters",
            ));
        }
        check_len("u", dims.n * np, u.len())?;
        self.run_forward(p, x, dims, sigma, u)
    }

    fn run_forward<T: Real>(
        &self,
        p: &[T],
        x: &[T],
        dims: Dims4,
        sigma: &[f64],
        u: &[T],
    ) -> Result<(Vec<T>, Vec<T>, UNetCache<T>)> {
        check_len("params", self.n_params, p.len())?;
        self.check_input(dims, x.len(), sigma.len())?;
        let n = dims.n;
        let np = self.config.joint_params;
        let fourier: Vec<T> = self
            .embed
            .forward(sigma)?
            .into_iter()
            .map(T::from_f64)
            .collect();
        let e0 = if np == 0 {
            fourier
        } else {
            concat(&fourier, self.embed.dim(), u, np, n, 1)
        };
        let z1 = self.mlp1.forward(p, &e0, n)?;
        let a1 = silu_forward(&z1);
        let z2 = self.mlp2.forward(p, &a1, n)?;
        let emb = silu_forward(&z2);

        let ch = &self.config.channels;
        let strides = &self.strides;
        let mut d = Dims4::new(n, ch[0], dims.h, dims.w);
        let mut h = self.conv_in.forward(p, x, dims)?;
        // the input convolution's output where level 0 pools it
        let mut stem = None;
        if strides[0] == 2 {
            let (pooled, pd) = avg_pool2_forward(&h, d)?;
            stem = Some(std::mem::replace(&mut h, pooled));
            d = pd;
        }
        let mut down_c = Vec::with_capacity(ch.len());
        let mut down_dims = Vec::with_capacity(ch.len());
        let mut skips = Vec::with_capacity(ch.len());
        for (l, level) in self.down.iter().enumerate() {
            let mut caches = Vec::with_capacity(level.len());
            for blk in level {
                let din = Dims4::new(n, blk.cin, d.h, d.w);
                let (out, c) = blk.forward(p, h, din, &emb)?;
                h = out;
                caches.push(c);
            }
            d = Dims4::new(n, ch[l], d.h, d.w);
            down_dims.push(d);
            down_c.push(caches);
            if l + 1 < ch.len() {
                if strides[l + 1] == 2 {
                    let (pooled, pd) = avg_pool2_forward(&h, d)?;
                    // h is kept as the skip connection
                    skips.push(std::mem::replace(&mut h, pooled));
                    d = pd;
                } else {
                    skips.push(copied(&h));
                }
            }
        }
        let (f_u, head_c) = match &self.head {
            Some(head) => {
                let input = concat(
                    &plane_moments(&h, d),
                    2 * d.c,
                    &emb,
                    self.config.embed_dim,
                    n,
                    1,
                );
                let z = head.h1.forward(p, &input, n)?;
                let a = silu_forward(&z);
                let f_u = head.h2.forward(p, &a, n)?;
                let deep = copied(&h);
                (f_u, Some(HeadCache { input, deep, z, a }))
            }
            None => (Vec::new(), None),
        };
        let mut up_c: Vec<Vec<BlockCache<T>>> = (0..self.up.len()).map(|_| Vec::new()).collect();
        for l in (0..self.up.len()).rev() {
            let skip = skips
                .pop()
                .ok_or_else(|| Error::invalid("unet", "internal: missing skip"))?;
            let (joined, ud) = Self::join(h, d, skip, strides[l + 1])?;
            h = joined;
            for blk in &self.up[l] {
                let din = Dims4::new(n, blk.cin, ud.h, ud.w);
                let (out, c) = blk.forward(p, h, din, &emb)?;
                h = out;
                up_c[l].push(c);
            }
            d = Dims4::new(n, ch[l], ud.h, ud.w);
        }
        if let Some(stem) = stem {
            let (joined, jd) = Self::join(h, d, stem, 2)?;
            h = joined;
            d = jd;
        }
        let (an, ho, nout) = self.norm_out.forward_silu(p, &h, d, None)?;
        let y = self.conv_out.forward(p, &ho, d)?;
        let cache = UNetCache {
            dims,
            x: copied(x),
            e0,
            z1,
            a1,
            z2,
            emb,
            down: down_c,
            down_dims,
            up: up_c,
            hn: h,
            nout,
            an,
            ho,
            head: head_c,
        };
        Ok((y, f_u, cache))
    }

    /// The way up's join: `[up2(h), skip]` where `stride` is 2, else `[h,
    /// skip]` (`h` of dims `d`, `skip` of `C_skip` channels at the joined
    /// resolution); consumes both.
    fn join<T: Real>(h: Vec<T>, d: Dims4, skip: Vec<T>, stride: usize) -> Result<(Vec<T>, Dims4)> {
        let (u, ud) = if stride == 2 {
            let up = upsample2_forward(&h, d)?;
            recycle(h);
            up
        } else {
            (h, d)
        };
        let cs = skip.len() / (ud.n * ud.plane()).max(1);
        let joined = concat(&u, ud.c, &skip, cs, ud.n, ud.plane());
        recycle(u);
        recycle(skip);
        Ok((joined, Dims4::new(ud.n, ud.c + cs, ud.h, ud.w)))
    }

    /// Backward pass for `dy = ∂L/∂F`: returns `∂L/∂x` and, if `grads` is
    /// given (length [`UNet::n_params`]), adds `∂L/∂θ` into it (map-only
    /// networks).
    pub fn backward<T: Real>(
        &self,
        p: &[T],
        cache: &UNetCache<T>,
        dy: &[T],
        grads: Option<&mut [T]>,
    ) -> Result<Vec<T>> {
        if self.head.is_some() {
            return Err(Error::invalid(
                "dy",
                "a joint network's backward pass needs the parameter output's gradient too",
            ));
        }
        Ok(self.run_backward(p, cache, dy, &[], grads)?.0)
    }

    /// Backward pass of a joint network for `dy = ∂L/∂F_k` and `du_out =
    /// ∂L/∂F_u`: returns `(∂L/∂x, ∂L/∂u)` and adds `∂L/∂θ` into `grads` if
    /// given.
    pub fn backward_joint<T: Real>(
        &self,
        p: &[T],
        cache: &UNetCache<T>,
        dy: &[T],
        du_out: &[T],
        grads: Option<&mut [T]>,
    ) -> Result<(Vec<T>, Vec<T>)> {
        if self.head.is_none() {
            return Err(Error::invalid(
                "du_out",
                "this is a map-only network: it has no parameter output",
            ));
        }
        check_len(
            "du_out",
            cache.dims.n * self.config.joint_params,
            du_out.len(),
        )?;
        self.run_backward(p, cache, dy, du_out, grads)
    }

    fn run_backward<T: Real>(
        &self,
        p: &[T],
        cache: &UNetCache<T>,
        dy: &[T],
        du_out: &[T],
        mut grads: Option<&mut [T]>,
    ) -> Result<(Vec<T>, Vec<T>)> {
        check_len("params", self.n_params, p.len())?;
        check_len("dy", cache.dims.len(), dy.len())?;
        if let Some(g) = grads.as_deref() {
            check_len("grads", self.n_params, g.len())?;
        }
        let g = &mut grads;
        let n = cache.dims.n;
        let ch = &self.config.channels;
        let strides = &self.strides;
        let d0 = Dims4::new(n, ch[0], cache.dims.h, cache.dims.w);
        let d_out = Dims4::new(n, self.config.out_channels(), d0.h, d0.w);
        let dho = self.conv_out.backward(p, &cache.ho, d_out, dy, g)?;
        let (mut dh, _) = self.norm_out.backward_silu(
            p,
            &cache.hn,
            d_out,
            None,
            &cache.nout,
            &cache.an,
            &dho,
            g,
        )?;
        recycle(dho);
        let mut dstem = None;
        if strides[0] == 2 {
            let (next, ds) = unjoin(&dh, ch[0], d0, 2)?;
            dstem = Some(ds);
            recycle(std::mem::replace(&mut dh, next));
        }
        let mut demb = vec![T::default(); cache.emb.len()];
        let mut dskips: Vec<Vec<T>> = Vec::with_capacity(self.up.len());
        for l in 0..self.up.len() {
            for (blk, c) in self.up[l].iter().zip(&cache.up[l]).rev() {
                let next = blk.backward(p, c, &cache.emb, &dh, &mut demb, g)?;
                recycle(std::mem::replace(&mut dh, next));
            }
            let (next, ds) = unjoin(&dh, ch[l + 1], cache.down_dims[l], strides[l + 1])?;
            dskips.push(ds);
            recycle(std::mem::replace(&mut dh, next));
        }
        // dh is now the gradient of the deepest level's output: add the head's.
        if let (Some(head), Some(hc)) = (&self.head, &cache.head) {
            let deep = ch[ch.len() - 1];
            let e = self.config.embed_dim;
            let da = head.h2.backward(p, &hc.a, n, du_out, g)?;
            let dz = silu_backward(&hc.z, &da)?;
            let dinput = head.h1.backward(p, &hc.input, n, &dz, g)?;
            let (dmoments, de) = split(&dinput, 2 * deep, e, n, 1);
            let dd = cache.down_dims[ch.len() - 1];
            plane_moments_backward(&hc.deep, dd, &dmoments, &mut dh);
            demb.iter_mut().zip(&de).for_each(|(a, b)| *a = *a + *b);
        }
        for l in (0..self.down.len()).rev() {
            if l + 1 < self.down.len() {
                if strides[l + 1] == 2 {
                    let next = avg_pool2_backward(cache.down_dims[l], &dh)?;
                    recycle(std::mem::replace(&mut dh, next));
                }
                dh.iter_mut()
                    .zip(&dskips[l])
                    .for_each(|(a, b)| *a = *a + *b);
            }
            for (blk, c) in self.down[l].iter().zip(&cache.down[l]).rev() {
                let next = blk.backward(p, c, &cache.emb, &dh, &mut demb, g)?;
                recycle(std::mem::replace(&mut dh, next));
            }
        }
        dskips.into_iter().for_each(recycle);
        if let Some(ds) = dstem {
            let next = avg_pool2_backward(d0, &dh)?;
            recycle(std::mem::replace(&mut dh, next));
            dh.iter_mut().zip(&ds).for_each(|(a, b)| *a = *a + *b);
            recycle(ds);
        }
        let dx = self.conv_in.backward(p, &cache.x, cache.dims, &dh, g)?;
        recycle(dh);
        let np = self.config.joint_params;
        let mut du = Vec::new();
        if g.is_some() || np > 0 {
            let dz2 = silu_backward(&cache.z2, &demb)?;
            let da1 = self.mlp2.backward(p, &cache.a1, n, &dz2, g)?;
            let dz1 = silu_backward(&cache.z1, &da1)?;
            let de0 = self.mlp1.backward(p, &cache.e0, n, &dz1, g)?;
            if np > 0 {
                du = split(&de0, self.embed.dim(), np, n, 1).1;
            }
        }
        Ok((dx, du))
    }

    /// The parameters as named tensors (for [`Weights::save`]).
    pub fn to_weights(&self, params: &[f32], weights: &mut Weights, prefix: &str) -> Result<()> {
        check_len("params", self.n_params, params.len())?;
        for s in &self.slots {
            weights.insert(
                &format!("{prefix}{}", s.name),
                &s.shape,
                params[s.offset..][..s.len].to_vec(),
            )?;
        }
        Ok(())
    }

    /// Reads the parameters back from named tensors (every slot must be present
    /// with its exact shape). Every tensor is found before the vector is
    /// allocated, so a file whose architecture claims more parameters than it
    /// holds fails without allocating them.
    pub fn params_from_weights(&self, weights: &Weights, prefix: &str) -> Result<Vec<f32>> {
        let parts = self
            .slots
            .iter()
            .map(|s| weights.get(&format!("{prefix}{}", s.name), &s.shape))
            .collect::<Result<Vec<&[f32]>>>()?;
        let mut p = Vec::with_capacity(self.n_params);
        parts.into_iter().for_each(|d| p.extend_from_slice(d));
        Ok(p)
    }
}
