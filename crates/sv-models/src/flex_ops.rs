//! Inference kernels that work on burn Flex tensor buffers directly: GEMMs with the bias
//! folded in, multi-head attention read straight out of the fused qkv projection, and a
//! fused LayerScale + residual update done in place. They avoid the copies, zero fills
//! and scalar `exp` calls that composing burn ops costs on the CPU.
//!
//! Every entry point returns `None` when a tensor is not a plain f32 Flex tensor (an
//! autodiff tensor while training, another backend such as CUDA); callers then run the
//! same computation with burn's ops.

use burn::tensor::{Tensor, TensorData};
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

use crate::fast_ops::exp_nonpositive;

/// Whether `t` is an f32 tensor of the Flex CPU backend outside autodiff: the tensors the
/// CPU kernels of this crate handle (others run burn's ops on their own backend).
pub fn is_flex_f32<const D: usize>(t: &Tensor<D>) -> bool {
    flex_any(t).is_some()
}

/// The Flex tensor behind an f32 tensor outside autodiff, sharing its buffer.
fn flex_any<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    if t.device().is_autodiff() || t.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    t.clone().try_into_primitive::<Flex>().ok()
}

/// The Flex tensor behind `t`, sharing its buffer, if it is a contiguous f32 Flex tensor.
pub(crate) fn flex<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    flex_any(t).filter(|f| f.layout().contiguous_offsets().is_some())
}

/// The elements of a contiguous f32 Flex tensor.
pub(crate) fn values(f: &FlexTensor) -> &[f32] {
    let (start, end) = f.layout().contiguous_offsets().expect("checked contiguous");
    &f.storage::<f32>()[start..end]
}

fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D], like: &Tensor<2>) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), &like.device())
}

/// A matrix as the GEMM reads it: its first element and the strides of its columns and
/// rows (a row-major matrix or its transpose, read in place).
#[derive(Clone, Copy)]
pub(crate) struct Operand {
    pub(crate) ptr: *const f32,
    pub(crate) col_stride: isize,
    pub(crate) row_stride: isize,
}

impl Operand {
    /// `m` read as stored, `[rows, cols]` row-major.
    pub(crate) fn plain(m: &[f32], cols: usize) -> Self {
        Self {
            ptr: m.as_ptr(),
            col_stride: 1,
            row_stride: cols as isize,
        }
    }

    /// The transpose of `m`, stored `[rows, cols]` row-major.
    pub(crate) fn transposed(m: &[f32], cols: usize) -> Self {
        Self {
            ptr: m.as_ptr(),
            col_stride: cols as isize,
            row_stride: 1,
        }
    }
}

/// `dst = scale · lhs·rhs (+ dst when `accumulate`)`, `[m, k]·[k, n]`: the one GEMM call
/// of the CPU kernels; on all threads when `parallel` and the product is large.
///
/// # Safety
/// `dst` must hold `m` rows of `n` writable elements at row stride `dst_rs`, and the
/// operands must describe `m×k` and `k×n` matrices inside live allocations.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_operands(
    dst: *mut f32,
    dst_rs: usize,
    (m, k, n): (usize, usize, usize),
    lhs: Operand,
    rhs: Operand,
    scale: f32,
    accumulate: bool,
    parallel: bool,
) {
    let par = if parallel && m * n * k >= 1 << 20 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the caller vouches for the destination and the operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride,
            lhs.row_stride,
            rhs.ptr,
            rhs.col_stride,
            rhs.row_stride,
            1.0f32,
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

/// `dst = x·w (+ dst when `accumulate`)` for row-major `x` `[m, k]` and `w` `[k, n]`.
///
/// # Safety
/// `dst` must hold `m` rows of `n` writable elements at row stride `dst_rs`.
pub(crate) unsafe fn gemm_rows(
    x: &[f32],
    w: &[f32],
    dst: *mut f32,
    dst_rs: usize,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    parallel: bool,
) {
    let (lhs, rhs) = (Operand::plain(x, k), Operand::plain(w, n));
    // SAFETY: the slices hold the row-major matrices; the caller vouches for `dst`.
    unsafe { gemm_operands(dst, dst_rs, (m, k, n), lhs, rhs, 1.0, accumulate, parallel) }
}

/// `x·w + bias` for `x` `[m, k]` and `w` `[k, n]` (burn's `Linear` layout), as one GEMM
/// whose destination starts as the bias rows.
pub fn linear(x: &Tensor<2>, w: &Tensor<2>, bias: Option<&Tensor<1>>) -> Option<Tensor<2>> {
    let (fx, fw) = (flex(x)?, flex(w)?);
    let [m, k] = x.dims();
    let [k2, n] = w.dims();
    if k != k2 {
        return None;
    }
    let (mut out, accumulate) = match bias {
        Some(b) => {
            let fb = flex(b)?;
            let b = values(&fb);
            let mut out = Vec::with_capacity(m * n);
            for _ in 0..m {
                out.extend_from_slice(b);
            }
            (out, true)
        }
        None => (Vec::with_capacity(m * n), false),
    };
    // SAFETY: `out` has room for m rows of n. Without a bias it is uninitialised and the
    // GEMM only writes it (`read_dst` false); it then holds m·n values.
    unsafe {
        gemm_rows(
            values(&fx),
            values(&fw),
            out.as_mut_ptr(),
            n,
            (m, k, n),
            accumulate,
            true,
        );
        out.set_len(m * n);
    };
    Some(tensor(out, [m, n], x))
}

/// `x + scale ⊙ (y + bias)` over rows of width `d` (a LayerScale'd residual branch),
/// written into `x`'s buffer when nothing else holds it. Gives `x` back untouched when
/// the tensors are not plain f32 Flex tensors.
pub fn residual_scaled(
    x: Tensor<3>,
    y: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    scale: &Tensor<1>,
) -> Result<Tensor<3>, Box<Tensor<3>>> {
    let (Some(fy), Some(fs)) = (flex(y), flex(scale)) else {
        return Err(Box::new(x));
    };
    let fb = match bias {
        Some(b) => match flex(b) {
            Some(f) => Some(f),
            None => return Err(Box::new(x)),
        },
        None => None,
    };
    let dims = x.dims();
    if flex(&x).is_none() {
        return Err(Box::new(x));
    }
    let Ok(mut fx) = x.try_into_primitive::<Flex>() else {
        unreachable!("checked to be a Flex tensor");
    };
    let d = dims[2];
    let (ys, ss) = (values(&fy), values(&fs));
    let bs = fb.as_ref().map(values);
    let (start, end) = fx.layout().contiguous_offsets().expect("contiguous");
    let xs = &mut fx.storage_mut::<f32>()[start..end];
    let chunk = (16 * 1024 / d.max(1)).max(1) * d;
    xs.par_chunks_mut(chunk)
        .zip(ys.par_chunks(chunk))
        .for_each(|(xr, yr)| residual_rows(xr, yr, bs, ss));
    Ok(Tensor::from_primitive::<Flex>(fx))
}

fn residual_rows(x: &mut [f32], y: &[f32], bias: Option<&[f32]>, scale: &[f32]) {
    let d = scale.len();
    for (xr, yr) in x.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
        match bias {
            Some(b) => {
                for (((xv, yv), bv), sv) in xr.iter_mut().zip(yr).zip(b).zip(scale) {
                    *xv += sv * (yv + bv);
                }
            }
            None => {
                for ((xv, yv), sv) in xr.iter_mut().zip(yr).zip(scale) {
                    *xv += sv * yv;
                }
            }
        }
    }
}

/// The sizes `(rows, D, T, dₕ)` of a fused projection `[B·T, 3D]` of `batch` items with
/// `heads` heads, if they divide.
fn attention_dims(
    f: &FlexTensor,
    batch: usize,
    heads: usize,
) -> Option<(usize, usize, usize, usize)> {
    let shape = f.layout().shape();
    if shape.num_dims() != 2 {
        return None;
    }
    let (rows, three_d) = (shape[0], shape[1]);
    let d = three_d / 3;
    if batch == 0 || heads == 0 || rows % batch != 0 || d % heads != 0 || d * 3 != three_d {
        return None;
    }
    Some((rows, d, rows / batch, d / heads))
}

/// The elements of an f32 Flex tensor in row-major order, copied only if it is strided.
pub(crate) fn row_major(f: &FlexTensor) -> Option<FlexTensor> {
    if f.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    Some(if f.layout().contiguous_offsets().is_some() {
        f.clone()
    } else {
        f.to_contiguous()
    })
}

/// The elements of a contiguous f32 Flex tensor to overwrite in place, if `t` holds the
/// only reference to its buffer.
pub(crate) fn unique_values_mut(t: &mut FlexTensor) -> Option<&mut [f32]> {
    if t.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    let (start, end) = t.layout().contiguous_offsets()?;
    t.try_storage_mut::<f32>().map(|s| &mut s[start..end])
}

/// Elements per parallel work item of the element-wise maps.
const MAP_CHUNK: usize = 16 * 1024;

/// Work on one block of values that [`vectorised`] compiles for AVX2 and FMA where the
/// CPU has them. Every `run` is `#[inline(always)]`, and so must be the functions it
/// applies per element (named functions, not closures, which the compiler may leave
/// out of line and so without AVX2), so that the loops vectorise.
pub(crate) trait Kernel {
    /// What the work returns.
    type Output;
    /// The work.
    fn run(self) -> Self::Output;
}

/// Runs `kernel` compiled for AVX2 and FMA where the CPU has them, else as it is.
#[inline(always)]
pub(crate) fn vectorised<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<K: Kernel>(kernel: K) -> K::Output {
            kernel.run()
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { avx2(kernel) };
        }
    }
    kernel.run()
}

/// `v[i] = f(v[i])` over one block.
struct MapInPlace<'a, F> {
    v: &'a mut [f32],
    f: F,
}

impl<F: Fn(f32) -> f32> Kernel for MapInPlace<'_, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        for x in self.v.iter_mut() {
            *x = (self.f)(*x);
        }
    }
}

/// `a[i] = f(a[i], b[i])` over one block.
struct ZipInPlace<'a, F> {
    a: &'a mut [f32],
    b: &'a [f32],
    f: F,
}

impl<F: Fn(f32, f32) -> f32> Kernel for ZipInPlace<'_, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        for (x, y) in self.a.iter_mut().zip(self.b) {
            *x = (self.f)(*x, *y);
        }
    }
}

/// `dst[i] = f(a[i], b[i])` over one block.
struct ZipInto<'a, F> {
    dst: &'a mut [MaybeUninit<f32>],
    a: &'a [f32],
    b: &'a [f32],
    f: F,
}

impl<F: Fn(f32, f32) -> f32> Kernel for ZipInto<'_, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        for ((d, x), y) in self.dst.iter_mut().zip(self.a).zip(self.b) {
            d.write((self.f)(*x, *y));
        }
    }
}

/// `v[i] = f(v[i])`, vectorised and in parallel; `f` an `#[inline(always)]` function
/// (see [`Kernel`]).
pub(crate) fn par_map_in_place<F>(v: &mut [f32], f: F)
where
    F: Fn(f32) -> f32 + Copy + Sync,
{
    v.par_chunks_mut(MAP_CHUNK)
        .for_each(|v| vectorised(MapInPlace { v, f }));
}

/// `a[i] = f(a[i], b[i])`, vectorised and in parallel; `b` as long as `a`, `f` an
/// `#[inline(always)]` function (see [`Kernel`]).
pub(crate) fn par_zip_map_in_place<F>(a: &mut [f32], b: &[f32], f: F)
where
    F: Fn(f32, f32) -> f32 + Copy + Sync,
{
    assert_eq!(a.len(), b.len(), "operands of one length");
    a.par_chunks_mut(MAP_CHUNK)
        .zip(b.par_chunks(MAP_CHUNK))
        .for_each(|(a, b)| vectorised(ZipInPlace { a, b, f }));
}

/// `f(a[i], b[i])` into a new buffer (never zero-filled first), vectorised and in
/// parallel; `b` as long as `a`, `f` an `#[inline(always)]` function (see [`Kernel`]).
pub(crate) fn par_zip_map<F>(a: &[f32], b: &[f32], f: F) -> Vec<f32>
where
    F: Fn(f32, f32) -> f32 + Copy + Sync,
{
    assert_eq!(a.len(), b.len(), "operands of one length");
    let mut out = Vec::with_capacity(a.len());
    out.spare_capacity_mut()[..a.len()]
        .par_chunks_mut(MAP_CHUNK)
        .zip(a.par_chunks(MAP_CHUNK).zip(b.par_chunks(MAP_CHUNK)))
        .for_each(|(dst, (a, b))| vectorised(ZipInto { dst, a, b, f }));
    // SAFETY: the chunks cover the first `a.len()` elements and each was written above.
    unsafe { out.set_len(a.len()) };
    out
}

/// The element-wise sum of `width`-wide partial sums, added in their order (blocks of
/// a fixed size, so a result does not depend on the thread count).
pub(crate) fn sum_blocks(partials: Vec<Vec<f32>>, width: usize) -> Vec<f32> {
    let mut total = vec![0f32; width];
    for p in &partials {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
    }
    total
}

/// A Flex tensor owning `data` in row-major order.
pub(crate) fn flex_tensor(data: Vec<f32>, shape: impl Into<burn::tensor::Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// Multi-head self-attention from a fused projection `qkv` `[B·T, 3D]` (query, key, value
/// side by side, heads contiguous within each) to `[B·T, D]` with the heads side by side:
/// `softmax(Q·Kᵀ/√dₕ)·V` per batch item and head, never copying Q, K or V out. Any layout;
/// `None` unless f32.
pub(crate) fn attention_flex(qkv: &FlexTensor, batch: usize, heads: usize) -> Option<FlexTensor> {
    let (rows, d, t, dh) = attention_dims(qkv, batch, heads)?;
    if rows * d == 0 {
        return Some(flex_tensor(Vec::new(), [rows, d]));
    }
    let qkv = row_major(qkv)?;
    let src = values(&qkv);
    let three_d = 3 * d;
    let scale = 1.0 / (dh as f32).sqrt();
    // Uninitialised: the jobs together write every element (each its heads' columns of
    // its image's rows, through a GEMM that does not read its destination).
    let mut out: Vec<f32> = Vec::with_capacity(rows * d);
    let out_ptr = out.as_mut_ptr() as usize;
    (0..batch * heads).into_par_iter().for_each_init(
        || vec![0f32; t * t],
        |scores, job| {
            let (b, h) = (job / heads, job % heads);
            let base = b * t * three_d;
            let q = &src[base + h * dh..];
            let k = &src[base + d + h * dh..];
            let v = &src[base + 2 * d + h * dh..];
            // SAFETY: every job writes its own `dh` columns of its own batch rows of `out`,
            // which outlives the parallel loop; reads stay inside `src`.
            unsafe {
                // scores = scale · Q·Kᵀ   [t, t]
                gemm_strided(
                    (t, t, dh),
                    scores.as_mut_ptr(),
                    t,
                    q.as_ptr(),
                    (three_d, 1),
                    k.as_ptr(),
                    (1, three_d),
                    scale,
                );
            }
            let inv_sums = softmax_unnormalised(scores, t);
            let dst = (out_ptr as *mut f32).wrapping_add(b * t * d + h * dh);
            // SAFETY: as above.
            unsafe {
                // out = P·V   [t, dh] at row stride D
                gemm_strided(
                    (t, dh, t),
                    dst,
                    d,
                    scores.as_ptr(),
                    (t, 1),
                    v.as_ptr(),
                    (three_d, 1),
                    1.0,
                );
                for (i, inv) in inv_sums.iter().enumerate() {
                    let row = std::slice::from_raw_parts_mut(dst.add(i * d), dh);
                    row.iter_mut().for_each(|o| *o *= inv);
                }
            }
        },
    );
    // SAFETY: all rows·d elements were written above.
    unsafe { out.set_len(rows * d) };
    Some(flex_tensor(out, [rows, d]))
}

/// `dst = beta · lhs·rhs` for strided `lhs` `[m, k]` and `rhs` `[k, n]` (row stride, column
/// stride each), into `dst` at row stride `dst_rs`; single-threaded.
///
/// # Safety
/// Every pointer must address the elements its strides reach.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const f32,
    (rhs_rs, rhs_cs): (usize, usize),
    beta: f32,
) {
    let operand = |ptr, rs: usize, cs: usize| Operand {
        ptr,
        col_stride: cs as isize,
        row_stride: rs as isize,
    };
    let (lhs, rhs) = (operand(lhs, lhs_rs, lhs_cs), operand(rhs, rhs_rs, rhs_cs));
    // SAFETY: forwarded to the caller.
    unsafe { gemm_operands(dst, dst_rs, (m, k, n), lhs, rhs, beta, false, false) }
}

/// The gradient `[B·T, 3D]` with respect to `qkv` of [`attention_flex`], given its input,
/// its output `out` `[B·T, D]` and the output's gradient `grad` `[B·T, D]`. Per image and
/// head it recomputes `P = softmax(Q·Kᵀ/√dₕ)` and writes `dV = Pᵀ·dO`,
/// `dQ = dS·K/√dₕ` and `dK = dSᵀ·Q/√dₕ` with `dS = P∘(dO·Vᵀ − rowsum(dO∘O))`.
/// `None` unless all three are f32 with matching shapes.
pub(crate) fn attention_backward_flex(
    qkv: &FlexTensor,
    out: &FlexTensor,
    grad: &FlexTensor,
    batch: usize,
    heads: usize,
) -> Option<FlexTensor> {
    let (rows, d, t, dh) = attention_dims(qkv, batch, heads)?;
    let want = [rows, d];
    for x in [out, grad] {
        let shape = x.layout().shape();
        if shape.num_dims() != 2 || [shape[0], shape[1]] != want {
            return None;
        }
    }
    if rows * d == 0 {
        return Some(flex_tensor(Vec::new(), [rows, 3 * d]));
    }
    let (qkv, out, grad) = (row_major(qkv)?, row_major(out)?, row_major(grad)?);
    let (src, o, g) = (values(&qkv), values(&out), values(&grad));
    let three_d = 3 * d;
    let scale = 1.0 / (dh as f32).sqrt();
    // Uninitialised: each job writes the q, k and v columns of its head in its image's rows.
    let mut dqkv: Vec<f32> = Vec::with_capacity(rows * three_d);
    let dst_ptr = dqkv.as_mut_ptr() as usize;
    (0..batch * heads).into_par_iter().for_each_init(
        || (vec![0f32; t * t], vec![0f32; t * t]),
        |(p, dp), job| {
            let (b, h) = (job / heads, job % heads);
            let base = b * t * three_d + h * dh;
            let (q, k, v) = (&src[base..], &src[base + d..], &src[base + 2 * d..]);
            let (ob, gb) = (&o[b * t * d + h * dh..], &g[b * t * d + h * dh..]);
            let dst = (dst_ptr as *mut f32).wrapping_add(base);
            // SAFETY: reads stay inside `src`, `o` and `g` (row strides 3D and D from
            // this head's first column); each job writes only its own head's q, k and v
            // columns of its own image's rows of `dqkv`, which outlives the loop.
            unsafe {
                // P = softmax(scale · Q·Kᵀ)
                gemm_strided(
                    (t, t, dh),
                    p.as_mut_ptr(),
                    t,
                    q.as_ptr(),
                    (three_d, 1),
                    k.as_ptr(),
                    (1, three_d),
                    scale,
                );
                let inv = softmax_unnormalised(p, t);
                for (row, inv) in p.chunks_exact_mut(t).zip(&inv) {
                    row.iter_mut().for_each(|x| *x *= inv);
                }
                // dV = Pᵀ·dO
                gemm_strided(
                    (t, dh, t),
                    dst.add(2 * d),
                    three_d,
                    p.as_ptr(),
                    (1, t),
                    gb.as_ptr(),
                    (d, 1),
                    1.0,
                );
                // dP = dO·Vᵀ
                gemm_strided(
                    (t, t, dh),
                    dp.as_mut_ptr(),
                    t,
                    gb.as_ptr(),
                    (d, 1),
                    v.as_ptr(),
                    (1, three_d),
                    1.0,
                );
            }
            // dS = P∘(dP − rowsum(dO∘O)), in place of dP
            for i in 0..t {
                let (gi, oi) = (&gb[i * d..i * d + dh], &ob[i * d..i * d + dh]);
                let dot: f32 = gi.iter().zip(oi).map(|(a, b)| a * b).sum();
                let (pr, dr) = (&p[i * t..(i + 1) * t], &mut dp[i * t..(i + 1) * t]);
                for (x, pv) in dr.iter_mut().zip(pr) {
                    *x = pv * (*x - dot);
                }
            }
            // SAFETY: as above.
            unsafe {
                // dQ = scale · dS·K,   dK = scale · dSᵀ·Q
                gemm_strided(
                    (t, dh, t),
                    dst,
                    three_d,
                    dp.as_ptr(),
                    (t, 1),
                    k.as_ptr(),
                    (three_d, 1),
                    scale,
                );
                gemm_strided(
                    (t, dh, t),
                    dst.add(d),
                    three_d,
                    dp.as_ptr(),
                    (1, t),
                    q.as_ptr(),
                    (three_d, 1),
                    scale,
                );
            }
        },
    );
    // SAFETY: every element was written above (B·H jobs × T rows × 3 blocks of dₕ).
    unsafe { dqkv.set_len(rows * three_d) };
    Some(flex_tensor(dqkv, [rows, three_d]))
}

/// Replace each row of `scores` `[t, t]` by `exp(s − max)` and return 1 / row sum.
fn softmax_unnormalised(scores: &mut [f32], t: usize) -> Vec<f32> {
    vectorised(Softmax { scores, t })
}

/// The rows of a score matrix for [`softmax_unnormalised`].
struct Softmax<'a> {
    scores: &'a mut [f32],
    t: usize,
}

impl Kernel for Softmax<'_> {
    type Output = Vec<f32>;
    #[inline(always)]
    fn run(self) -> Vec<f32> {
        softmax_portable(self.scores, self.t)
    }
}

/// The rows one by one in a plain loop (an iterator's `collect` would leave the work in
/// a function of its own, compiled without AVX2).
#[inline(always)]
fn softmax_portable(scores: &mut [f32], t: usize) -> Vec<f32> {
    const L: usize = 16;
    let mut inverse_sums = Vec::with_capacity(scores.len() / t.max(1));
    for row in scores.chunks_exact_mut(t) {
        let mut lanes = [f32::NEG_INFINITY; L];
        let mut chunks = row.chunks_exact(L);
        for c in &mut chunks {
            for l in 0..L {
                lanes[l] = lanes[l].max(c[l]);
            }
        }
        let max = chunks.remainder().iter().copied().fold(
            lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            f32::max,
        );
        let mut sums = [0f32; L];
        let mut chunks = row.chunks_exact_mut(L);
        for c in &mut chunks {
            for l in 0..L {
                let e = exp_nonpositive(c[l] - max);
                c[l] = e;
                sums[l] += e;
            }
        }
        let mut sum: f32 = sums.iter().sum();
        for v in chunks.into_remainder() {
            *v = exp_nonpositive(*v - max);
            sum += *v;
        }
        inverse_sums.push(1.0 / sum);
    }
    inverse_sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn linear_and_residual_match_burn() {
        let device = Device::default();
        let n = Distribution::Normal(0.0, 1.0);
        let x: Tensor<2> = Tensor::random([50, 40], n, &device);
        let w: Tensor<2> = Tensor::random([40, 24], n, &device);
        let b: Tensor<1> = Tensor::random([24], n, &device);
        let want = x.clone().matmul(w.clone()) + b.clone().unsqueeze();
        let got = linear(&x, &w, Some(&b)).unwrap();
        assert!(max_diff(got.clone(), want.clone()) < 1e-4);
        let got_nb = linear(&x, &w, None).unwrap();
        assert!(max_diff(got_nb, x.clone().matmul(w.clone())) < 1e-4);

        let r: Tensor<3> = Tensor::random([2, 25, 24], n, &device);
        let s: Tensor<1> = Tensor::random([24], n, &device);
        let want = r.clone()
            + ((got.clone() + b.clone().unsqueeze()) * s.clone().unsqueeze()).reshape([2, 25, 24]);
        let fast = residual_scaled(r, &got, Some(&b), &s).unwrap();
        assert!(max_diff(fast, want) < 1e-4);
    }

    #[test]
    fn autodiff_tensors_take_the_burn_path() {
        let device = Device::default().autodiff();
        let x: Tensor<2> = Tensor::zeros([4, 4], &device);
        assert!(linear(&x, &x, None).is_none());
    }
}
