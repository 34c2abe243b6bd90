#!/usr/bin/env python3
"""Reference PyTorch implementation of lensdiff's neural denoisers.

This file re-implements, independently of the Rust code, the EDM-preconditioned
U-Net denoiser of ``src/prior/denoiser.rs`` and ``src/nn/unet.rs`` and the
pure joint (parameters and map) denoiser of ``src/prior/joint/neural.rs``,
reads the ``lensdiff-denoiser-v1`` and ``lensdiff-joint-denoiser-v1``
safetensors files that ``lensdiff`` writes, and evaluates ``D(x; sigma)`` and
the vector-Jacobian product ``J_D(x)^T v`` (by ``torch.autograd``) in float64.
``tests/torch_reference.rs`` compares it with the Rust forward and backward
passes. It needs only ``torch`` and ``numpy`` (the safetensors format is
parsed by hand).

Command line (the file's ``format`` metadata picks the mode)::

    python3 tools/torch_reference.py MODEL.safetensors X.npy SIGMA.npy OUT_D.npy \
        [--vjp V.npy OUT_VJP.npy] [--pixel-arcmin P] [--resave OUT.safetensors]

    python3 tools/torch_reference.py JOINT.safetensors K.npy SIGMA.npy OUT_DK.npy \
        --u U.npy OUT_DU.npy [--vjp VK.npy OUT_GK.npy --vjp-u VU.npy OUT_GU.npy] \
        [--resave OUT.safetensors]

Map denoiser: ``X`` is ``[n, h, w]`` (any float dtype, float32 in the tests),
``SIGMA`` is ``[n]`` (one noise level per map), ``V`` has the shape of ``X``.
``OUT_D`` and ``OUT_VJP`` are written as float64 ``[n, h, w]``.
``--pixel-arcmin`` sets the pixel size of the hybrid's Gaussian part (default:
the file's ``denoiser.pixel_arcmin``). ``--resave`` writes the loaded model
back with :func:`save_lensdiff` (a round-trip check of the exporter).

Joint denoiser (pure only): ``K`` is ``[n, h, w]`` (maps in joint units,
``kappa / sigma_d``), ``U`` is ``[n, p]`` (standardised parameters), ``SIGMA``
is ``[n]``. ``OUT_DK`` (``[n, h, w]``) and ``OUT_DU`` (``[n, p]``) receive the
two parts of ``D``; with ``--vjp`` and ``--vjp-u`` (given together: the two
parts of ``v``, shaped as ``K`` and ``U``) ``OUT_GK`` and ``OUT_GU`` receive
the two parts of ``J_D^T v``. All outputs are float64.

The model
---------
Preconditioning (Karras et al. 2022, eq. 7, with data scale ``sigma_d``)::

    D(x; s) = base(x; s) + c_out(s) F(c_in(s) x, ln s)
    c_in = 1/sqrt(s^2 + sd^2),  c_out = s sd/sqrt(s^2 + sd^2),  c_skip = sd^2/(s^2 + sd^2)
    pure:   base = c_skip x
    hybrid: base = ifft2(S/(S + s^2) fft2(x))      (Wiener filter of the stored C_ell)

with ``S(k) = C(ell)/Delta^2``, ``ell = 2 pi |k| / Delta``, ``k`` in cycles per
pixel from ``fftfreq``, ``Delta`` the pixel side in radians and ``S(0) = 0``.
``C(ell)`` is the stored table interpolated linearly in (ln ell, ln C)
(linearly in ell where a neighbour is zero), with the power law through the two
end rows extended outside the table (zero if an end value is zero).

The joint denoiser (``src/prior/joint/neural.rs``) works in joint units, where
both parts have unit data scale (``u = (theta - mean) / std`` under the prior
``N(mean, std^2)``, ``k = kappa / sigma_d``), so one set of scalings with
``sigma_data = 1`` serves both::

    (F_k, F_u) = F(c_in k, c_in u, ln s)
    D_u = c_skip u + c_out F_u,   D_k = c_skip k + c_out F_k                (pure)
    c_in = 1/sqrt(s^2 + 1),  c_out = s/sqrt(s^2 + 1),  c_skip = 1/(s^2 + 1)

A hybrid joint denoiser (base: the exact Gaussian joint denoiser of a
cosmology) is not re-implemented here; loading one raises an error.

The network ``F`` (``src/nn/unet.rs``)::

    e      = silu(mlp2(silu(mlp1(fourier(ln s)))))     fourier: [cos(2 pi f u)..., sin(2 pi f u)...]
    h      = conv_in(x)                                 f geometric from 1/64 to 1/2, u = ln s
    level l = 0..L-1:  if s_l = 2: h = avgpool2(h);  h = ResBlock(h, e) x blocks;  skip_l = h
    level l = L-2..0:  if s_{l+1} = 2: h = nearest_up2(h);  h = cat([h, skip_l]);  h = ResBlock(h, e) x blocks
    if s_0 = 2:        h = cat([nearest_up2(h), conv_in(x)])
    F      = conv_out(silu(GN(h)))

    strides s_l (``strides``, default [1, 2, 2, ...]); conv_in and conv_out are
    ``in_kernel`` and ``out_kernel`` wide (default 3)

    ResBlock(x, e): h = conv1(silu(GN1(x)));  (s, t) = split(emb(e))
                    h = conv2(silu(GN2(h) * (1 + s) + t));  out = (skip(x) + h) / sqrt(2)

A joint network (``joint_params = p > 0``) also takes ``u`` (``[n, p]``,
already scaled by ``c_in``) and returns ``F_u`` (``[n, p]``) beside the map::

    e      = silu(mlp2(silu(mlp1([fourier(ln s), u]))))    u enters with the noise level
    b      = [mean(h_D), mean(h_D**2)] over pixels of the deepest level's output h_D
             (after its blocks): 2 C_{L-1} features
    F_u    = head.mlp2(silu(head.mlp1([b, e])))

All 3x3 convolutions are PyTorch cross-correlations with "same" padding, either
circular (``padding_mode='circular'``, i.e. ``F.pad(mode='circular')``) or
zeros, per the architecture's ``padding``; ``skip`` is a 1x1 convolution present
only when the channel count changes. GroupNorm has ``eps = 1e-5``.

Name mapping
------------
The tensor names of the file are the ``state_dict`` names of
:class:`LensdiffUNet` (``embed.mlp1.weight``, ``conv_in.bias``,
``down.1.0.conv1.weight``, ``up.0.0.skip.weight``, ``norm_out.gamma``, ...),
with one renaming: PyTorch's ``nn.GroupNorm`` parameters ``weight`` and
``bias`` are stored as ``gamma`` and ``beta``. Convolution and linear weights
keep PyTorch's layouts (``[out, in, k, k]`` and ``[out, in]``). A hybrid file
also holds ``gaussian.ell`` and ``gaussian.cl``. Metadata: ``format =
"lensdiff-denoiser-v1"``, ``architecture`` (JSON: ``channels``, ``blocks``,
``groups``, ``embed_freqs``, ``embed_dim``, ``padding``) and ``denoiser``
(JSON: ``kind``, ``sigma_data``, ``pixel_arcmin``, ``sigma_max`` (or null),
``description``).

A joint network adds ``head.mlp1.*`` and ``head.mlp2.*`` (``embed.mlp1.weight``
is then ``[E, 2F + p]``). A joint file has ``format =
"lensdiff-joint-denoiser-v1"``, ``architecture`` with ``joint_params = p``, and
``denoiser`` (JSON: ``kind``, ``names``, ``prior_mean``, ``prior_std``,
``sigma_d``, ``pixel_arcmin``, ``sigma_max`` (or null), ``gaussian`` (the
cosmology of a Gaussian joint prior, or null; kept as is) and
``description``).

Exporting a PyTorch-trained model
---------------------------------
Train a :class:`LensdiffDenoiser` (or any module with the same parameter names
and semantics) and write it with ``save_lensdiff(model, path)``; ``lensdiff``
loads the file with ``Denoiser::load``. Likewise a pure
:class:`LensdiffJointDenoiser`: ``save_lensdiff`` writes the joint format,
which ``JointDenoiser::load`` reads. For a model of a different code base,
copy its weights into a :class:`LensdiffDenoiser` built from the matching
architecture (``model.net.load_state_dict(...)``) first.
"""

import argparse
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT = "lensdiff-denoiser-v1"
JOINT_FORMAT = "lensdiff-joint-denoiser-v1"
GROUP_NORM_EPS = 1e-5
ARCMIN_TO_RAD = math.pi / (180.0 * 60.0)

# ---------------------------------------------------------------------------
# safetensors, by hand
# ---------------------------------------------------------------------------

_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
}


def load_safetensors(path):
    """Reads a safetensors file: returns ``(tensors, metadata)``, with the
    tensors as float64 numpy arrays by name and the metadata as a str dict.

    Format: an 8-byte little-endian header length ``N``, ``N`` bytes of JSON
    (``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
    {...}}``), then the raw little-endian data (offsets relative to its start).
    """
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        if not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor {name!r} lies outside the data")
        shape = tuple(int(s) for s in info["shape"])
        dtype = info["dtype"]
        buf = data[begin:end]
        if dtype in _DTYPES:
            arr = np.frombuffer(buf, dtype=_DTYPES[dtype])
        elif dtype == "BF16":
            bits = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {dtype}")
        if arr.size != math.prod(shape):
            raise ValueError(f"{path}: tensor {name!r}: shape {shape} vs {arr.size} elements")
        tensors[name] = arr.astype(np.float64).reshape(shape)
    return tensors, metadata


def save_safetensors(path, tensors, metadata):
    """Writes float32 tensors (name -> array) and str metadata as safetensors,
    in sorted name order with the header padded to 8 bytes (as the Rust
    ``safetensors`` crate writes)."""
    header = {"__metadata__": dict(metadata)} if metadata else {}
    blobs, offset = [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(np.asarray(tensors[name], dtype="<f4"))
        b = arr.tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(b)],
        }
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------


def embed_frequencies(n):
    """Geometric frequencies from 1/64 to 1/2 cycles per unit of ln sigma."""
    lo, hi = 1.0 / 64.0, 0.5
    return [lo * (hi / lo) ** (i / (n - 1) if n > 1 else 0.0) for i in range(n)]


class FourierEmbedding(nn.Module):
    """``[cos(2 pi f_i ln s)]_i ++ [sin(2 pi f_i ln s)]_i``."""

    def __init__(self, n_freqs):
        super().__init__()
        self.register_buffer(
            "freqs", torch.tensor(embed_frequencies(n_freqs), dtype=torch.float64), persistent=False
        )

    def forward(self, sigma):
        u = torch.log(sigma.to(torch.float64))
        a = 2.0 * math.pi * self.freqs[None, :] * u[:, None]
        return torch.cat([torch.cos(a), torch.sin(a)], dim=1)


class Embedding(nn.Module):
    """Noise-level embedding ``silu(mlp2(silu(mlp1(fourier(ln s)))))``; a
    joint network's takes ``silu(mlp2(silu(mlp1([fourier(ln s), u]))))``."""

    def __init__(self, cfg):
        super().__init__()
        self.joint_params = int(cfg.get("joint_params", 0))
        self.fourier = FourierEmbedding(cfg["embed_freqs"])
        self.mlp1 = nn.Linear(2 * cfg["embed_freqs"] + self.joint_params, cfg["embed_dim"])
        self.mlp2 = nn.Linear(cfg["embed_dim"], cfg["embed_dim"])

    def forward(self, sigma, u=None):
        e0 = self.fourier(sigma).to(self.mlp1.weight.dtype)
        if self.joint_params:
            e0 = torch.cat([e0, u.to(e0.dtype)], dim=1)
        return F.silu(self.mlp2(F.silu(self.mlp1(e0))))


class ParamHead(nn.Module):
    """The parameter output of a joint network: ``mlp2(silu(mlp1([b, e])))``
    with ``b`` the per-channel pixel means and mean squares of the deepest
    level's output."""

    def __init__(self, deep_channels, embed_dim, joint_params):
        super().__init__()
        self.mlp1 = nn.Linear(2 * deep_channels + embed_dim, embed_dim)
        self.mlp2 = nn.Linear(embed_dim, joint_params)

    def forward(self, h, e):
        b = torch.cat([h.mean(dim=(2, 3)), (h * h).mean(dim=(2, 3))], dim=1)
        return self.mlp2(F.silu(self.mlp1(torch.cat([b, e], dim=1))))


def _conv(cin, cout, k, padding):
    mode = {"periodic": "circular", "zero": "zeros"}[padding]
    return nn.Conv2d(cin, cout, k, padding=k // 2, padding_mode=mode)


class ResBlock(nn.Module):
    """Residual block with per-channel scale and shift from the embedding."""

    def __init__(self, cin, cout, cfg):
        super().__init__()
        g, pad = cfg["groups"], cfg["padding"]
        self.cout = cout
        self.norm1 = nn.GroupNorm(g, cin, eps=GROUP_NORM_EPS)
        self.conv1 = _conv(cin, cout, 3, pad)
        self.emb = nn.Linear(cfg["embed_dim"], 2 * cout)
        self.norm2 = nn.GroupNorm(g, cout, eps=GROUP_NORM_EPS)
        self.conv2 = _conv(cout, cout, 3, pad)
        self.skip = _conv(cin, cout, 1, pad) if cin != cout else None

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        st = self.emb(e)
        s = st[:, : self.cout, None, None]
        t = st[:, self.cout :, None, None]
        h = self.conv2(F.silu(self.norm2(h) * (1.0 + s) + t))
        skip = self.skip(x) if self.skip is not None else x
        return (skip + h) / math.sqrt(2.0)


class LensdiffUNet(nn.Module):
    """The U-Net ``F(x, sigma)`` of ``src/nn/unet.rs`` for ``x`` of shape
    ``[n, 1, h, w]`` and ``sigma`` of shape ``[n]``; a joint network
    (``joint_params = p > 0``) is ``(F_k, F_u) = F(x, sigma, u)`` with ``u``
    and ``F_u`` of shape ``[n, p]``."""

    def __init__(self, cfg):
        super().__init__()
        self.config = dict(cfg)
        ch, nb = list(cfg["channels"]), cfg["blocks"]
        if cfg["padding"] not in ("periodic", "zero"):
            raise ValueError(f"padding must be 'periodic' or 'zero', got {cfg['padding']!r}")
        if any(c % cfg["groups"] for c in ch):
            raise ValueError(f"groups {cfg['groups']} must divide every channel count {ch}")
        self.channels = ch
        self.joint_params = int(cfg.get("joint_params", 0))
        if self.joint_params < 0:
            raise ValueError(f"joint_params must be >= 0, got {self.joint_params}")
        self.strides = list(cfg.get("strides") or [1] + [2] * (len(ch) - 1))
        if len(self.strides) != len(ch) or any(s not in (1, 2) for s in self.strides):
            raise ValueError(f"strides {self.strides} must be 1 or 2, one per level")
        k_in, k_out = int(cfg.get("in_kernel", 3)), int(cfg.get("out_kernel", 3))
        self.embed = Embedding(cfg)
        self.conv_in = _conv(1, ch[0], k_in, cfg["padding"])
        self.down = nn.ModuleList()
        cin = ch[0]
        for c in ch:
            level = nn.ModuleList()
            for _ in range(nb):
                level.append(ResBlock(cin, c, cfg))
                cin = c
            self.down.append(level)
        # up[l] for l = 0..L-2, applied deepest first
        self.up = nn.ModuleList()
        for l in range(len(ch) - 1):
            level = nn.ModuleList()
            cin = ch[l + 1] + ch[l]
            for _ in range(nb):
                level.append(ResBlock(cin, ch[l], cfg))
                cin = ch[l]
            self.up.append(level)
        # a pooled level 0: the input convolution's output joins at the end
        c_out = 2 * ch[0] if self.strides[0] == 2 else ch[0]
        self.norm_out = nn.GroupNorm(cfg["groups"], c_out, eps=GROUP_NORM_EPS)
        self.conv_out = _conv(c_out, 1, k_out, cfg["padding"])
        self.head = (
            ParamHead(ch[-1], cfg["embed_dim"], self.joint_params) if self.joint_params else None
        )

    def forward(self, x, sigma, u=None):
        m = 1 << self.strides.count(2)
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(f"map sides {tuple(x.shape[-2:])} must be multiples of {m}")
        if self.joint_params:
            if u is None or tuple(u.shape) != (x.shape[0], self.joint_params):
                got = None if u is None else tuple(u.shape)
                raise ValueError(
                    f"a joint network needs u of shape {(x.shape[0], self.joint_params)}, got {got}"
                )
        elif u is not None:
            raise ValueError("a map-only network takes no parameters u")
        e = self.embed(sigma, u)
        up2 = lambda t: t.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        h = self.conv_in(x)
        stem = h
        skips = []
        for l, level in enumerate(self.down):
            if self.strides[l] == 2:
                h = F.avg_pool2d(h, 2)
            for blk in level:
                h = blk(h, e)
            skips.append(h)
        skips.pop()
        # h is the deepest level's output: the parameter head reads it here
        f_u = self.head(h, e) if self.head is not None else None
        for l in reversed(range(len(self.up))):
            if self.strides[l + 1] == 2:
                h = up2(h)
            h = torch.cat([h, skips.pop()], dim=1)
            for blk in self.up[l]:
                h = blk(h, e)
        if self.strides[0] == 2:
            h = torch.cat([up2(h), stem], dim=1)
        f_k = self.conv_out(F.silu(self.norm_out(h)))
        return f_k if self.head is None else (f_k, f_u)

    # --- lensdiff names <-> state_dict names -------------------------------

    def _norm_names(self):
        return {name for name, mod in self.named_modules() if isinstance(mod, nn.GroupNorm)}

    def lensdiff_state(self):
        """The parameters under lensdiff's names (float32 numpy arrays)."""
        norms = self._norm_names()
        out = {}
        for name, p in self.state_dict().items():
            mod, _, kind = name.rpartition(".")
            if mod in norms:
                kind = {"weight": "gamma", "bias": "beta"}[kind]
            out[f"{mod}.{kind}"] = p.detach().cpu().numpy().astype(np.float32)
        return out

    def load_lensdiff_state(self, tensors):
        """Loads parameters from lensdiff-named arrays (every one must be present)."""
        norms = self._norm_names()
        state = {}
        for name, p in self.state_dict().items():
            mod, _, kind = name.rpartition(".")
            if mod in norms:
                kind = {"weight": "gamma", "bias": "beta"}[kind]
            key = f"{mod}.{kind}"
            if key not in tensors:
                raise KeyError(f"weights have no tensor {key!r}")
            a = tensors[key]
            if tuple(a.shape) != tuple(p.shape):
                raise ValueError(f"tensor {key!r}: shape {tuple(a.shape)}, expected {tuple(p.shape)}")
            state[name] = torch.as_tensor(a, dtype=p.dtype)
        self.load_state_dict(state)


# ---------------------------------------------------------------------------
# The Gaussian part
# ---------------------------------------------------------------------------


def cl_eval(ell_tab, cl_tab, ell):
    """``ClTable::eval`` of ``src/spectrum.rs``, vectorised over ``ell``."""
    ell_tab = np.asarray(ell_tab, dtype=np.float64)
    cl_tab = np.asarray(cl_tab, dtype=np.float64)
    ell = np.asarray(ell, dtype=np.float64)
    n = len(ell_tab)
    # partition_point(l <= ell) - 1, clamped to a valid segment
    i = np.clip(np.searchsorted(ell_tab, ell, side="right") - 1, 0, n - 2)
    l0, l1, c0, c1 = ell_tab[i], ell_tab[i + 1], cl_tab[i], cl_tab[i + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (np.log(ell) - np.log(l0)) / (np.log(l1) - np.log(l0))
        loglog = np.exp(np.log(c0) + t * (np.log(c1) - np.log(c0)))
        lin = c0 + (ell - l0) / (l1 - l0) * (c1 - c0)
    # a zero neighbour: linear in ell inside the segment, zero outside it
    lin = np.where((ell < l0) | (ell > l1), 0.0, lin)
    out = np.where((c0 > 0) & (c1 > 0), loglog, lin)
    return np.where(ell > 0, out, 0.0)


def pixel_power(ell_tab, cl_tab, ny, nx, pixel_arcmin):
    """Full-plane pixel power ``S[ky, kx] = C(2 pi |k| / Delta) / Delta^2``, ``S[0, 0] = 0``."""
    delta = pixel_arcmin * ARCMIN_TO_RAD
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.fftfreq(nx)[None, :]
    ell = 2.0 * np.pi * np.hypot(kx, ky) / delta
    s = cl_eval(ell_tab, cl_tab, ell) / (delta * delta)
    s[0, 0] = 0.0
    return s


# ---------------------------------------------------------------------------
# The denoiser
# ---------------------------------------------------------------------------


class LensdiffDenoiser(nn.Module):
    """``D(x; sigma)`` of ``src/prior/denoiser.rs`` for ``x`` of shape ``[n, h, w]``.

    ``kind`` is ``"pure"`` or ``"hybrid"``; a hybrid needs ``ell`` and ``cl``
    (its Gaussian C_ell table) and evaluates the Wiener filter on the grid of
    the input, with pixels of ``pixel_arcmin`` arcminutes.
    """

    def __init__(self, architecture, kind="pure", sigma_data=1.0, pixel_arcmin=1.0,
                 ell=None, cl=None, description="", sigma_max=None):
        super().__init__()
        if kind not in ("pure", "hybrid"):
            raise ValueError(f"kind must be 'pure' or 'hybrid', got {kind!r}")
        if (kind == "hybrid") != (ell is not None and cl is not None):
            raise ValueError("a hybrid denoiser needs ell and cl; a pure one has none")
        if int(architecture.get("joint_params", 0)):
            raise ValueError(
                "the architecture is a joint network (joint_params > 0): use LensdiffJointDenoiser"
            )
        self.net = LensdiffUNet(architecture)
        self.kind = kind
        self.sigma_data = float(sigma_data)
        self.pixel_arcmin = float(pixel_arcmin)
        self.description = description
        # largest trained noise level (samplers start there); None if unknown
        self.sigma_max = None if sigma_max is None else float(sigma_max)
        self.ell = None if ell is None else np.asarray(ell, dtype=np.float64)
        self.cl = None if cl is None else np.asarray(cl, dtype=np.float64)

    @classmethod
    def load(cls, path):
        """Loads a ``lensdiff-denoiser-v1`` safetensors file."""
        return cls.from_safetensors(*load_safetensors(path), path=path)

    @classmethod
    def from_safetensors(cls, tensors, meta, path="weights"):
        """The denoiser of a file's tensors and metadata (:func:`load_safetensors`)."""
        if meta.get("format") != FORMAT:
            hint = " (a joint denoiser: use LensdiffJointDenoiser)" if meta.get("format") == JOINT_FORMAT else ""
            raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}{hint}")
        arch = json.loads(meta["architecture"])
        d = json.loads(meta["denoiser"])
        hybrid = d["kind"] == "hybrid"
        model = cls(
            arch,
            kind=d["kind"],
            sigma_data=d["sigma_data"],
            pixel_arcmin=d["pixel_arcmin"],
            ell=tensors["gaussian.ell"] if hybrid else None,
            cl=tensors["gaussian.cl"] if hybrid else None,
            description=d.get("description", ""),
            sigma_max=d.get("sigma_max"),
        )
        model.net.load_lensdiff_state(tensors)
        return model

    def scalings(self, sigma):
        """``(c_skip, c_out, c_in)``, each of shape ``[n, 1, 1]``."""
        s = sigma.to(torch.float64)[:, None, None]
        sd2 = self.sigma_data**2
        r2 = s * s + sd2
        return sd2 / r2, s * self.sigma_data / torch.sqrt(r2), 1.0 / torch.sqrt(r2)

    def gaussian_base(self, x, sigma, pixel_arcmin=None):
        """``ifft2(S/(S + sigma^2) fft2(x))`` per map (hybrid only)."""
        p = self.pixel_arcmin if pixel_arcmin is None else pixel_arcmin
        s = torch.as_tensor(pixel_power(self.ell, self.cl, x.shape[-2], x.shape[-1], p),
                            dtype=torch.float64, device=x.device)
        s2 = sigma.to(torch.float64)[:, None, None] ** 2
        gain = (s[None] / (s[None] + s2)).to(x.dtype)
        return torch.fft.ifft2(gain * torch.fft.fft2(x)).real

    def forward(self, x, sigma, pixel_arcmin=None):
        c_skip, c_out, c_in = (c.to(x.dtype) for c in self.scalings(sigma))
        f = self.net((c_in * x)[:, None], sigma)[:, 0]
        if self.kind == "pure":
            base = c_skip * x
        else:
            base = self.gaussian_base(x, sigma, pixel_arcmin)
        return base + c_out * f


# ---------------------------------------------------------------------------
# The joint denoiser
# ---------------------------------------------------------------------------

HYBRID_JOINT_UNSUPPORTED = (
    "a hybrid joint denoiser is not supported by this reference: its base is the exact "
    "Gaussian joint denoiser of a cosmology (GaussianJoint in src/prior/joint/gaussian.rs), "
    "which is not re-implemented here; only pure joint denoisers load"
)


class LensdiffJointDenoiser(nn.Module):
    """The pure joint denoiser ``(D_u, D_k) = D(u, k; sigma)`` of
    ``src/prior/joint/neural.rs`` for ``u`` of shape ``[n, p]`` (standardised
    parameters) and ``k`` of shape ``[n, h, w]`` (maps in units of
    ``sigma_d``), one ``sigma`` per item.

    ``names``, ``prior_mean`` and ``prior_std`` describe the parameters
    (``u = (theta - prior_mean) / prior_std``); ``gaussian`` is the file's
    cosmology of a Gaussian joint prior (a dict, kept as is for the exporter;
    a pure network uses it only for lensdiff's guidance).
    """

    def __init__(self, architecture, names, prior_mean, prior_std, sigma_d=1.0,
                 pixel_arcmin=1.0, kind="pure", sigma_max=None, gaussian=None,
                 description=""):
        super().__init__()
        if kind == "hybrid":
            raise ValueError(HYBRID_JOINT_UNSUPPORTED)
        if kind != "pure":
            raise ValueError(f"kind must be 'pure', got {kind!r}")
        p = len(names)
        if len(prior_mean) != p or len(prior_std) != p:
            raise ValueError(f"{p} names but {len(prior_mean)} means and {len(prior_std)} stds")
        if int(architecture.get("joint_params", 0)) != p:
            raise ValueError(
                f"the network takes {architecture.get('joint_params', 0)} parameters "
                f"but the description names {p}"
            )
        self.net = LensdiffUNet(architecture)
        self.kind = kind
        self.names = [str(n) for n in names]
        self.prior_mean = [float(v) for v in prior_mean]
        self.prior_std = [float(v) for v in prior_std]
        self.sigma_d = float(sigma_d)
        self.pixel_arcmin = float(pixel_arcmin)
        self.sigma_max = None if sigma_max is None else float(sigma_max)
        self.gaussian = gaussian
        self.description = description

    @classmethod
    def load(cls, path):
        """Loads a ``lensdiff-joint-denoiser-v1`` safetensors file (pure only)."""
        return cls.from_safetensors(*load_safetensors(path), path=path)

    @classmethod
    def from_safetensors(cls, tensors, meta, path="weights"):
        """The joint denoiser of a file's tensors and metadata (:func:`load_safetensors`)."""
        if meta.get("format") != JOINT_FORMAT:
            hint = " (a map denoiser: use LensdiffDenoiser)" if meta.get("format") == FORMAT else ""
            raise ValueError(f"{path}: format {meta.get('format')!r}, expected {JOINT_FORMAT!r}{hint}")
        arch = json.loads(meta["architecture"])
        d = json.loads(meta["denoiser"])
        if d.get("kind") == "hybrid":
            raise ValueError(f"{path}: {HYBRID_JOINT_UNSUPPORTED}")
        model = cls(
            arch,
            d["names"],
            d["prior_mean"],
            d["prior_std"],
            sigma_d=d["sigma_d"],
            pixel_arcmin=d["pixel_arcmin"],
            kind=d["kind"],
            sigma_max=d.get("sigma_max"),
            gaussian=d.get("gaussian"),
            description=d.get("description", ""),
        )
        model.net.load_lensdiff_state(tensors)
        return model

    @property
    def joint_params(self):
        return len(self.names)

    def standardise(self, theta):
        """``u = (theta - prior_mean) / prior_std`` (``theta`` of shape ``[..., p]``)."""
        mean = torch.as_tensor(self.prior_mean, dtype=theta.dtype, device=theta.device)
        std = torch.as_tensor(self.prior_std, dtype=theta.dtype, device=theta.device)
        return (theta - mean) / std

    def theta(self, u):
        """``theta = prior_mean + prior_std u``."""
        mean = torch.as_tensor(self.prior_mean, dtype=u.dtype, device=u.device)
        std = torch.as_tensor(self.prior_std, dtype=u.dtype, device=u.device)
        return mean + std * u

    @staticmethod
    def scalings(sigma):
        """``(c_skip, c_out, c_in)`` with ``sigma_data = 1``, each of shape ``[n, 1]``."""
        s = sigma.to(torch.float64)[:, None]
        r2 = s * s + 1.0
        return 1.0 / r2, s / torch.sqrt(r2), 1.0 / torch.sqrt(r2)

    def forward(self, u, k, sigma):
        """``(D_u, D_k)``: ``[n, p]`` and ``[n, h, w]``."""
        if k.ndim != 3 or tuple(u.shape) != (k.shape[0], self.joint_params):
            raise ValueError(
                f"k must be [n, h, w] and u [n, {self.joint_params}]; "
                f"got {tuple(k.shape)} and {tuple(u.shape)}"
            )
        c_skip, c_out, c_in = (c.to(k.dtype) for c in self.scalings(sigma))
        f_k, f_u = self.net((c_in[:, :, None] * k)[:, None], sigma, c_in * u)
        d_u = c_skip * u + c_out * f_u
        d_k = c_skip[:, :, None] * k + c_out[:, :, None] * f_k[:, 0]
        return d_u, d_k


def load_model(path):
    """Loads a lensdiff file by its ``format`` metadata: a
    :class:`LensdiffDenoiser` or a (pure) :class:`LensdiffJointDenoiser`."""
    tensors, meta = load_safetensors(path)
    fmt = meta.get("format")
    if fmt == FORMAT:
        return LensdiffDenoiser.from_safetensors(tensors, meta, path)
    if fmt == JOINT_FORMAT:
        return LensdiffJointDenoiser.from_safetensors(tensors, meta, path)
    raise ValueError(f"{path}: format {fmt!r}, expected {FORMAT!r} or {JOINT_FORMAT!r}")


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def _architecture(net, joint):
    cfg = net.config
    keys = ["channels", "blocks", "groups", "embed_freqs", "embed_dim", "padding"]
    arch = {k: cfg[k] for k in keys}
    # written only where they differ from the defaults, as lensdiff does
    if cfg.get("strides"):
        arch["strides"] = list(cfg["strides"])
    for k in ("in_kernel", "out_kernel"):
        if int(cfg.get(k, 3)) != 3:
            arch[k] = int(cfg[k])
    if joint:
        arch["joint_params"] = net.joint_params
    return arch


def save_lensdiff(model, path, extra_metadata=None):
    """Writes ``model`` (a :class:`LensdiffDenoiser`) in lensdiff's
    ``lensdiff-denoiser-v1`` format: its parameters under lensdiff's names (as
    float32), the hybrid's C_ell table and the metadata ``format``,
    ``architecture`` and ``denoiser``, plus ``extra_metadata`` (str -> str).
    A :class:`LensdiffJointDenoiser` is written in the
    ``lensdiff-joint-denoiser-v1`` format instead (:func:`save_lensdiff_joint`)."""
    if isinstance(model, LensdiffJointDenoiser):
        return save_lensdiff_joint(model, path, extra_metadata)
    tensors = model.net.lensdiff_state()
    if model.kind == "hybrid":
        tensors["gaussian.ell"] = np.asarray(model.ell, dtype=np.float32)
        tensors["gaussian.cl"] = np.asarray(model.cl, dtype=np.float32)
    arch = _architecture(model.net, joint=False)
    meta = {
        "format": FORMAT,
        "architecture": json.dumps(arch),
        "denoiser": json.dumps({
            "kind": model.kind,
            "sigma_data": model.sigma_data,
            "pixel_arcmin": model.pixel_arcmin,
            "sigma_max": model.sigma_max,
            "description": model.description,
        }),
    }
    meta.update(extra_metadata or {})
    save_safetensors(path, tensors, meta)


def save_lensdiff_joint(model, path, extra_metadata=None):
    """Writes ``model`` (a pure :class:`LensdiffJointDenoiser`) in lensdiff's
    ``lensdiff-joint-denoiser-v1`` format: its parameters under lensdiff's
    names (as float32) and the metadata ``format``, ``architecture`` (with
    ``joint_params``) and ``denoiser``, plus ``extra_metadata`` (str -> str)."""
    meta = {
        "format": JOINT_FORMAT,
        "architecture": json.dumps(_architecture(model.net, joint=True)),
        "denoiser": json.dumps({
            "kind": model.kind,
            "names": model.names,
            "prior_mean": model.prior_mean,
            "prior_std": model.prior_std,
            "sigma_d": model.sigma_d,
            "pixel_arcmin": model.pixel_arcmin,
            "sigma_max": model.sigma_max,
            "gaussian": model.gaussian,
            "description": model.description,
        }),
    }
    meta.update(extra_metadata or {})
    save_safetensors(path, model.net.lensdiff_state(), meta)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _main_joint(args, model):
    """The joint mode: ``D`` (both parts) and, if asked, ``J_D^T v``."""
    if args.u is None:
        sys.exit(f"{args.model} is a joint denoiser: give the parameters with --u U.npy OUT_DU.npy")
    if (args.vjp is None) != (args.vjp_u is None):
        sys.exit("a joint VJP needs both parts of v: --vjp VK.npy OUT_GK.npy and --vjp-u VU.npy OUT_GU.npy")
    if args.pixel_arcmin is not None:
        sys.exit("--pixel-arcmin applies to a hybrid map denoiser only")
    k = torch.tensor(np.load(args.x), dtype=torch.float64)
    u = torch.tensor(np.load(args.u[0]), dtype=torch.float64)
    sigma = torch.tensor(np.load(args.sigma), dtype=torch.float64).reshape(-1)
    p = model.joint_params
    if k.ndim != 3 or sigma.shape[0] != k.shape[0] or tuple(u.shape) != (k.shape[0], p):
        sys.exit(
            f"k must be [n, h, w], u [n, {p}] and sigma [n]; "
            f"got {tuple(k.shape)}, {tuple(u.shape)} and {tuple(sigma.shape)}"
        )
    want_vjp = args.vjp is not None
    k.requires_grad_(want_vjp)
    u.requires_grad_(want_vjp)
    d_u, d_k = model(u, k, sigma)
    np.save(args.out_d, d_k.detach().numpy())
    np.save(args.u[1], d_u.detach().numpy())
    if want_vjp:
        v_k = torch.tensor(np.load(args.vjp[0]), dtype=torch.float64)
        v_u = torch.tensor(np.load(args.vjp_u[0]), dtype=torch.float64)
        if v_k.shape != k.shape or v_u.shape != u.shape:
            sys.exit(
                f"v_k must have the shape of k {tuple(k.shape)} and v_u that of u {tuple(u.shape)}; "
                f"got {tuple(v_k.shape)} and {tuple(v_u.shape)}"
            )
        g_u, g_k = torch.autograd.grad((d_u, d_k), (u, k), grad_outputs=(v_u, v_k))
        np.save(args.vjp[1], g_k.numpy())
        np.save(args.vjp_u[1], g_u.numpy())
    if args.resave:
        save_lensdiff(model, args.resave)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="lensdiff denoiser or joint denoiser (.safetensors)")
    ap.add_argument("x", help="maps, [n, h, w] .npy")
    ap.add_argument("sigma", help="noise levels, [n] .npy")
    ap.add_argument("out_d", help="output D(x; sigma) (a joint model's map part), [n, h, w] float64 .npy")
    ap.add_argument("--vjp", nargs=2, metavar=("V", "OUT_VJP"),
                    help="also write J_D(x)^T V (float64 .npy; a joint model's map parts)")
    ap.add_argument("--u", nargs=2, metavar=("U", "OUT_DU"),
                    help="joint model: the parameters u, [n, p] .npy, and the output D_u")
    ap.add_argument("--vjp-u", nargs=2, metavar=("VU", "OUT_GU"),
                    help="joint model: the parameter part of V, [n, p], and of J_D^T V (with --vjp)")
    ap.add_argument("--pixel-arcmin", type=float, default=None,
                    help="pixel size of the hybrid's Gaussian part (default: the file's)")
    ap.add_argument("--resave", metavar="PATH",
                    help="write the loaded model back with save_lensdiff")
    args = ap.parse_args(argv)

    try:
        model = load_model(args.model).to(torch.float64)
    except (ValueError, KeyError) as e:
        sys.exit(f"cannot load {args.model}: {e}")
    if isinstance(model, LensdiffJointDenoiser):
        return _main_joint(args, model)
    if args.u is not None or args.vjp_u is not None:
        sys.exit(f"{args.model} is a map denoiser: --u and --vjp-u apply to joint denoisers only")
    x = torch.tensor(np.load(args.x), dtype=torch.float64)
    sigma = torch.tensor(np.load(args.sigma), dtype=torch.float64).reshape(-1)
    if x.ndim != 3 or sigma.shape[0] != x.shape[0]:
        sys.exit(f"x must be [n, h, w] and sigma [n]; got {tuple(x.shape)} and {tuple(sigma.shape)}")
    x.requires_grad_(args.vjp is not None)
    d = model(x, sigma, args.pixel_arcmin)
    np.save(args.out_d, d.detach().numpy())
    if args.vjp is not None:
        v = torch.tensor(np.load(args.vjp[0]), dtype=torch.float64)
        if v.shape != x.shape:
            sys.exit(f"V must have the shape of x {tuple(x.shape)}, got {tuple(v.shape)}")
        (g,) = torch.autograd.grad(d, x, grad_outputs=v)
        np.save(args.vjp[1], g.numpy())
    if args.resave:
        save_lensdiff(model, args.resave)


if __name__ == "__main__":
    main()
