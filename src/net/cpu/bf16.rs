//! bf16 matrix products for the CPU convolutions: bf16 operands, f32 accumulation and result.
//!
//! bf16 is the upper half of an f32 (8 exponent bits, 7 mantissa bits): half the bytes of every
//! operand streamed, a relative rounding error of at most 2⁻⁹ per operand, and products summed
//! in f32. Two kernels, chosen at run time by what the CPU has ([`Kernel::detect`]):
//! - [`Kernel::Amx`]: Intel AMX (`tdpbf16ps` on 16×16 f32 tiles, 16×32 bf16 operands; Sapphire
//!   Rapids and later). Linux hands out AMX state only to processes that ask for it
//!   (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), which detection does.
//! - [`Kernel::Avx512Bf16`]: `vdpbf16ps` (16 f32 lanes += pairs of bf16 products; AMD Zen 4,
//!   Intel Cooper Lake and later).
//!
//! Where the CPU has neither, there is no bf16 kernel and the convolutions stay f32.
//!
//! Operand layouts, shared by both kernels: A is row-major bf16 (`m × k`); B comes as `k/2` rows
//! of `n` bf16 *pairs* (one `u32` holds B[2p][j] in its low half and B[2p+1][j] in its high half:
//! the "VNNI" layout both instructions read); C is row-major f32.

use std::str::FromStr;
use std::sync::OnceLock;

/// Environment variable that forces a kernel (`amx`, `avx512bf16`) or none (`none`), for tests
/// and comparisons. A kernel the CPU lacks is never used, whatever this says.
pub const KERNEL_ENV: &str = "STYLIZE_VIDEO_BF16_KERNEL";

/// A bf16 matrix-product kernel the CPU can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Intel AMX tiles.
    Amx,
    /// AVX-512 BF16 dot products.
    Avx512Bf16,
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kernel::Amx => "amx",
            Kernel::Avx512Bf16 => "avx512bf16",
        })
    }
}

impl FromStr for Kernel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "amx" => Ok(Kernel::Amx),
            "avx512bf16" => Ok(Kernel::Avx512Bf16),
            _ => Err(format!("unknown bf16 kernel '{s}' (expected amx or avx512bf16)")),
        }
    }
}

impl Kernel {
    /// The fastest kernel this CPU (and OS) can run, or `None`; honours [`KERNEL_ENV`].
    /// Detected once per process.
    pub fn detect() -> Option<Kernel> {
        static DETECTED: OnceLock<Option<Kernel>> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            let forced = std::env::var(KERNEL_ENV).ok();
            match forced.as_deref().map(str::trim) {
                Some("none") => None,
                Some(name) if !name.is_empty() => name.parse().ok().filter(|k: &Kernel| k.available()),
                _ => [Kernel::Amx, Kernel::Avx512Bf16].into_iter().find(|k| k.available()),
            }
        })
    }

    /// Every kernel this CPU can run, fastest first (tests and benchmarks compare them; the
    /// tool uses [`Self::detect`]'s).
    pub fn all_available() -> Vec<Kernel> {
        [Kernel::Amx, Kernel::Avx512Bf16].into_iter().filter(|k| k.available()).collect()
    }

    /// Whether this CPU and OS can run the kernel (for AMX this also asks Linux for the tile
    /// state). Found out once per process.
    pub fn available(self) -> bool {
        static AVAILABLE: [OnceLock<bool>; 2] = [OnceLock::new(), OnceLock::new()];
        *AVAILABLE[self as usize].get_or_init(|| self.probe())
    }

    fn probe(self) -> bool {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            match self {
                Kernel::Amx => amx::available(),
                Kernel::Avx512Bf16 => {
                    is_x86_feature_detected!("avx512bf16")
                        && is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512bw")
                        && is_x86_feature_detected!("avx512vl")
                }
            }
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            let _ = self;
            false
        }
    }
}

/// Rounds an f32 to the nearest bf16 (ties to even); NaN stays NaN.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// The f32 a bf16 stands for (exact).
#[inline(always)]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Two bf16 in the VNNI order: `even` (row 2p) in the low half, `odd` (row 2p+1) in the high.
#[inline(always)]
pub fn pack_pair(even: f32, odd: f32) -> u32 {
    (to_bf16(even) as u32) | ((to_bf16(odd) as u32) << 16)
}

/// `dst[x] = pack_pair(even[x], odd[x])`, entries whose mask entry (if a mask is given) is not
/// positive taken as zero; sixteen pairs per step with AVX-512 BF16 where the CPU has it (the
/// same rounding, to nearest even).
pub fn pack_pairs(even: &[f32], odd: &[f32], masks: Option<(&[f32], &[f32])>, dst: &mut [u32]) {
    let n = dst.len();
    assert!(even.len() >= n && odd.len() >= n && masks.is_none_or(|(a, b)| a.len() >= n && b.len() >= n));
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if Kernel::Avx512Bf16.available() {
        // SAFETY: `available` found AVX-512 F, BW, VL and BF16, the features the function is
        // compiled for. It reads `even`, `odd` and the masks and writes `dst` at indices below
        // n/16·16 ≤ n = dst.len(), and the inputs are at least n long (asserted above).
        done = unsafe { avx512::pack_pairs(even, odd, masks, dst) };
    }
    let keep = |mask: Option<&[f32]>, x: usize, v: f32| if mask.is_none_or(|m| m[x] > 0.0) { v } else { 0.0 };
    for x in done..n {
        dst[x] = pack_pair(keep(masks.map(|m| m.0), x, even[x]), keep(masks.map(|m| m.1), x, odd[x]));
    }
}

/// Rounds every value to bf16.
pub fn round_all(values: &[f32]) -> Vec<u16> {
    values.iter().map(|&v| to_bf16(v)).collect()
}

/// A thread's use of a kernel: for AMX, the tile configuration loaded for as long as it lives
/// (and the tile state released when it drops). [`block`] runs inside one.
pub struct Session {
    kernel: Kernel,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Session {
    /// Starts using `kernel` on this thread. The kernel must be available (see [`Kernel::detect`]).
    pub fn start(kernel: Kernel) -> Self {
        assert!(kernel.available(), "the {kernel} bf16 kernel is not available on this CPU");
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if kernel == Kernel::Amx {
            // SAFETY: `available` (asserted above) found AMX-TILE and AMX-BF16, the tile state
            // enabled in XCR0, and Linux's permission for this process (without which the first
            // tile instruction would fault). `ldtilecfg` reads only the 64-byte static `FULL`.
            unsafe { amx::configure() };
        }
        Session { kernel, _not_send: std::marker::PhantomData }
    }

    pub fn kernel(&self) -> Kernel {
        self.kernel
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if self.kernel == Kernel::Amx {
            // SAFETY: `start` checked AMX and configured the tiles on this very thread (a
            // Session is not Send, so it drops where it started); `tilerelease` then only
            // returns this thread's tile state to its initial, unconfigured state.
            unsafe { amx::release() };
        }
    }
}

/// One block of a sum of matrix products, the core of a direct convolution:
/// `C (rows × cols) = Σ_t A_t (rows × k) · B_t (k × cols)`, with A_t at `a + t·a_tap` (bf16,
/// row stride `lda`) and B_t's pairs at `b + b_offsets[t]` (row stride `ldb` pairs); C is f32 at
/// `c`, row stride `ldc`. `rows` and `cols` are 16 or 32, `k` a multiple of 32. With a single
/// offset `[0]` this is one product C = A · B.
///
/// # Safety
/// Every strided region read must lie in its allocation, C must not overlap A or B, and the CPU
/// must have the session's kernel.
#[allow(clippy::too_many_arguments)]
pub unsafe fn block(
    session: &Session,
    (rows, cols, k): (usize, usize, usize),
    (a, lda, a_tap): (*const u16, usize, usize),
    (b, ldb, b_offsets): (*const u32, usize, &[usize]),
    (c, ldc): (*mut f32, usize),
) {
    debug_assert!(matches!(rows, 16 | 32) && matches!(cols, 16 | 32) && k % 32 == 0);
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    match session.kernel {
        Kernel::Amx => amx::block(rows == 32, cols == 32, k, a, lda, a_tap, b, ldb, b_offsets, c, ldc),
        Kernel::Avx512Bf16 => avx512::block(rows, cols, k, a, lda, a_tap, b, ldb, b_offsets, c, ldc),
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        let _ = (session, rows, cols, k, a, lda, a_tap, b, ldb, b_offsets, c, ldc);
        unreachable!("no bf16 kernel is ever detected on this platform");
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod amx {
    use std::arch::asm;
    use std::arch::x86_64::{__cpuid_count, _xgetbv};

    /// `arch_prctl` request for permission to use an extended state component.
    const ARCH_REQ_XCOMP_PERM: libc::c_ulong = 0x1023;
    /// The AMX tile data state component.
    const XFEATURE_XTILEDATA: libc::c_ulong = 18;

    /// AMX-TILE and AMX-BF16 in CPUID, the tile state enabled by the OS (XCR0 bits 17, 18),
    /// and Linux's permission for this process.
    pub fn available() -> bool {
        // SAFETY: CPUID exists on every x86-64 CPU, and leaf 7 is read only once leaf 0 says it
        // exists. XGETBV faults unless the OS enabled XSAVE, so it runs only once CPUID.1:ECX
        // bit 27 (OSXSAVE) says so. arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) takes two
        // integers, no pointers: at worst it fails and returns -1 (then: not available).
        unsafe {
            if __cpuid_count(0, 0).eax < 7 {
                return false;
            }
            let edx = __cpuid_count(7, 0).edx;
            let (amx_bf16, amx_tile) = (edx & (1 << 22) != 0, edx & (1 << 24) != 0);
            if !(amx_bf16 && amx_tile) || __cpuid_count(1, 0).ecx & (1 << 27) == 0 {
                return false;
            }
            if _xgetbv(0) & (0b11 << 17) != 0b11 << 17 {
                return false;
            }
            libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0
        }
    }

    /// The tile configuration: palette 1, all eight tiles 16 rows × 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    static FULL: TileConfig = {
        let mut cfg = [0u8; 64];
        cfg[0] = 1;
        let mut t = 0;
        while t < 8 {
            cfg[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
            cfg[48 + t] = 16; // rows
            t += 1;
        }
        TileConfig(cfg)
    };

    /// Loads the tile configuration on this thread.
    ///
    /// # Safety
    /// The CPU must have AMX-TILE, the OS must have enabled the tile state and granted this
    /// process its use ([`available`] checks all three); otherwise `ldtilecfg` faults.
    pub unsafe fn configure() {
        asm!("ldtilecfg [{}]", in(reg) FULL.0.as_ptr(), options(nostack, readonly));
    }

    /// Releases this thread's tile state.
    ///
    /// # Safety
    /// As for [`configure`]: the CPU and OS must support AMX (checked by [`available`]).
    pub unsafe fn release() {
        asm!("tilerelease", options(nostack, nomem));
    }

    /// Accumulators tmm0–3 (rows 0/16 × columns 0/16), A in tmm4–5, B in tmm6–7; a 16-wide
    /// edge uses the tiles that fit.
    ///
    /// # Safety
    /// The tiles must be configured on this thread ([`configure`]), and the regions must be as
    /// [`super::block`] requires: for each tap t, 16 or 32 rows of k bf16 at `a + t·a_tap`
    /// (row stride `lda`) and k/2 rows of 16 or 32 pairs at `b + b_offsets[t]` (row stride `ldb`)
    /// readable, 16 or 32 rows of 16 or 32 f32 at `c` (row stride `ldc`) writable and
    /// overlapping neither.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn block(
        rows2: bool,
        cols2: bool,
        k: usize,
        a: *const u16,
        lda: usize,
        a_tap: usize,
        b: *const u32,
        ldb: usize,
        b_offsets: &[usize],
        c: *mut f32,
        ldc: usize,
    ) {
        let (sa, sb, sc) = (lda * 2, ldb * 4, ldc * 4);
        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        for (t, &offset) in b_offsets.iter().enumerate() {
            let a_t = a.add(t * a_tap);
            let b_t = b.add(offset);
            for kk in (0..k).step_by(32) {
                let pa0 = a_t.add(kk);
                let pa1 = pa0.add(16 * lda);
                let pb0 = b_t.add(kk / 2 * ldb);
                let pb1 = pb0.add(16);
                match (rows2, cols2) {
                    (true, true) => asm!(
                        "tileloadd tmm4, [{a0} + {sa}*1]",
                        "tileloadd tmm6, [{b0} + {sb}*1]",
                        "tileloadd tmm7, [{b1} + {sb}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tileloadd tmm5, [{a1} + {sa}*1]",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        a0 = in(reg) pa0, a1 = in(reg) pa1, b0 = in(reg) pb0, b1 = in(reg) pb1,
                        sa = in(reg) sa, sb = in(reg) sb, options(nostack, readonly),
                    ),
                    (true, false) => asm!(
                        "tileloadd tmm4, [{a0} + {sa}*1]",
                        "tileloadd tmm6, [{b0} + {sb}*1]",
                        "tileloadd tmm5, [{a1} + {sa}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        a0 = in(reg) pa0, a1 = in(reg) pa1, b0 = in(reg) pb0,
                        sa = in(reg) sa, sb = in(reg) sb, options(nostack, readonly),
                    ),
                    (false, true) => asm!(
                        "tileloadd tmm4, [{a0} + {sa}*1]",
                        "tileloadd tmm6, [{b0} + {sb}*1]",
                        "tileloadd tmm7, [{b1} + {sb}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        a0 = in(reg) pa0, b0 = in(reg) pb0, b1 = in(reg) pb1,
                        sa = in(reg) sa, sb = in(reg) sb, options(nostack, readonly),
                    ),
                    (false, false) => asm!(
                        "tileloadd tmm4, [{a0} + {sa}*1]",
                        "tileloadd tmm6, [{b0} + {sb}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        a0 = in(reg) pa0, b0 = in(reg) pb0,
                        sa = in(reg) sa, sb = in(reg) sb, options(nostack, readonly),
                    ),
                }
            }
        }
        asm!("tilestored [{} + {}*1], tmm0", in(reg) c, in(reg) sc, options(nostack));
        if cols2 {
            asm!("tilestored [{} + {}*1], tmm1", in(reg) c.add(16), in(reg) sc, options(nostack));
        }
        if rows2 {
            let c1 = c.add(16 * ldc);
            asm!("tilestored [{} + {}*1], tmm2", in(reg) c1, in(reg) sc, options(nostack));
            if cols2 {
                asm!("tilestored [{} + {}*1], tmm3", in(reg) c1.add(16), in(reg) sc, options(nostack));
            }
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod avx512 {
    use std::arch::x86_64::*;

    /// Rows of C per micro-tile.
    const MR: usize = 8;

    /// [`super::pack_pairs`] sixteen pairs at a time; returns how many it packed.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW, VL and BF16, and `even`, `odd` and the masks must be at
    /// least `dst.len()` long (whole vectors are loaded up to `dst.len()/16·16`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    pub unsafe fn pack_pairs(even: &[f32], odd: &[f32], masks: Option<(&[f32], &[f32])>, dst: &mut [u32]) -> usize {
        // 16-bit lanes: the even value of pair i from the low half, its odd one from the high.
        let interleave = _mm512_set_epi16(
            31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0,
        );
        let n = dst.len() / 16 * 16;
        for x in (0..n).step_by(16) {
            let mut e = _mm512_loadu_ps(even.as_ptr().add(x));
            let mut o = _mm512_loadu_ps(odd.as_ptr().add(x));
            if let Some((me, mo)) = masks {
                let zero = _mm512_setzero_ps();
                e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(me.as_ptr().add(x)), zero), e);
                o = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(_mm512_loadu_ps(mo.as_ptr().add(x)), zero), o);
            }
            let halves = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(o, e));
            _mm512_storeu_si512(dst.as_mut_ptr().add(x) as *mut _, _mm512_permutexvar_epi16(interleave, halves));
        }
        n
    }

    /// [`super::block`] on AVX-512 BF16: `rows` (a multiple of [`MR`]) by 16 or 32 columns.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW, VL and BF16 (`tile` is compiled for them), and the
    /// regions must be as [`super::block`] requires (see [`tile`] for one micro-tile's).
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn block(
        rows: usize,
        cols: usize,
        k: usize,
        a: *const u16,
        lda: usize,
        a_tap: usize,
        b: *const u32,
        ldb: usize,
        b_offsets: &[usize],
        c: *mut f32,
        ldc: usize,
    ) {
        for i in (0..rows).step_by(MR) {
            let (a, c) = (a.add(i * lda), c.add(i * ldc));
            if cols == 32 {
                tile::<2>(k, a, lda, a_tap, b, ldb, b_offsets, c, ldc);
            } else {
                tile::<1>(k, a, lda, a_tap, b, ldb, b_offsets, c, ldc);
            }
        }
    }

    /// C[MR × 16·NV] = Σ_t A_t[MR × k] · B_t[k × 16·NV]: one pair of k per step, each of A's
    /// pairs broadcast against NV vectors of B's pairs.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW, VL and BF16. For each tap t, MR rows of k bf16 at
    /// `a + t·a_tap` (row stride `lda`) and k/2 rows of 16·NV pairs at `b + b_offsets[t]` (row
    /// stride `ldb`) must be readable, and MR rows of 16·NV f32 at `c` (row stride `ldc`)
    /// writable (unaligned accesses are fine).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const NV: usize>(
        k: usize,
        a: *const u16,
        lda: usize,
        a_tap: usize,
        b: *const u32,
        ldb: usize,
        b_offsets: &[usize],
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); NV]; MR];
        for (t, &offset) in b_offsets.iter().enumerate() {
            let (a, b) = (a.add(t * a_tap), b.add(offset));
            for p in 0..k / 2 {
                let bv: [__m512bh; NV] = std::array::from_fn(|v| {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.add(p * ldb + 16 * v) as *const _))
                });
                for (r, row) in acc.iter_mut().enumerate() {
                    let pair = (a.add(r * lda + 2 * p) as *const i32).read_unaligned();
                    let av = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair));
                    for v in 0..NV {
                        row[v] = _mm512_dpbf16_ps(row[v], av, bv[v]);
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, value) in row.iter().enumerate() {
                _mm512_storeu_ps(c.add(r * ldc + 16 * v), *value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorised packing against the scalar one, masks included (a length with a tail).
    #[test]
    fn pack_pairs_matches_pack_pair() {
        let n = 37;
        let even: Vec<f32> = (0..n).map(|i| (i as f32 - 18.3) * 1.37e-2 + if i == 5 { 1.0 + 1.0 / 256.0 } else { 0.0 }).collect();
        let odd: Vec<f32> = (0..n).map(|i| (i as f32 * 7.1).sin() * 300.0).collect();
        let me: Vec<f32> = (0..n).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
        let mo: Vec<f32> = (0..n).map(|i| if i % 4 == 1 { -1.0 } else { 0.5 }).collect();
        for masks in [None, Some((&me[..], &mo[..]))] {
            let mut got = vec![0u32; n];
            pack_pairs(&even, &odd, masks, &mut got);
            for x in 0..n {
                let (a, b) = match masks {
                    None => (even[x], odd[x]),
                    Some(_) => (if me[x] > 0.0 { even[x] } else { 0.0 }, if mo[x] > 0.0 { odd[x] } else { 0.0 }),
                };
                assert_eq!(got[x], pack_pair(a, b), "pair {x}");
            }
        }
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even mantissa (1.0).
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0);
        // 1 + 3·2⁻⁸ lies halfway between 1 + 2⁻⁷ and 1 + 2⁻⁶: even is 1 + 2⁻⁶.
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 1.0 / 64.0);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        for x in [0.1f32, 3.3, -123.456, 1e-20, 6.5e4] {
            assert!(((from_bf16(to_bf16(x)) - x) / x).abs() <= 1.0 / 512.0, "{x}");
        }
    }

    /// Both kernels against an f64 product of the same bf16 operands, on every block shape.
    #[test]
    fn kernels_match_a_plain_product_of_the_rounded_operands() {
        let kernels = Kernel::all_available();
        if kernels.is_empty() {
            eprintln!("no bf16 kernel on this CPU: nothing to compare");
            return;
        }
        for (m, n, k) in [(16, 16, 32), (32, 32, 96), (16, 32, 64), (32, 16, 64)] {
            let a: Vec<u16> = (0..m * k).map(|i| to_bf16(((i * 7919 % 201) as f32 - 100.0) / 37.0)).collect();
            let b_plain: Vec<f32> = (0..k * n).map(|i| ((i * 104729 % 151) as f32 - 75.0) / 29.0).collect();
            let b: Vec<u32> = (0..k / 2 * n)
                .map(|i| {
                    let (p, j) = (i / n, i % n);
                    pack_pair(b_plain[2 * p * n + j], b_plain[(2 * p + 1) * n + j])
                })
                .collect();
            for &kernel in &kernels {
                let mut c = vec![f32::NAN; m * n];
                let session = Session::start(kernel);
                // SAFETY: the kernel is available (`all_available`). A is m × k (row stride k),
                // B k/2 × n pairs (row stride n) and C m × n (row stride n), exactly the sizes
                // of `a`, `b` and `c`; C is a separate vector.
                unsafe { block(&session, (m, n, k), (a.as_ptr(), k, 0), (b.as_ptr(), n, &[0]), (c.as_mut_ptr(), n)) };
                for i in 0..m {
                    for j in 0..n {
                        let expected: f64 = (0..k)
                            .map(|q| from_bf16(a[i * k + q]) as f64 * from_bf16(to_bf16(b_plain[q * n + j])) as f64)
                            .sum();
                        let got = c[i * n + j] as f64;
                        assert!((got - expected).abs() <= 1e-4 * (1.0 + expected.abs()), "{kernel} {m}×{n}×{k} C[{i}][{j}] = {got}, expected {expected}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Single-thread rate of the block product on cache-resident operands (prints; run with
    /// `cargo test --release --lib bf16::speed -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn block_rate_in_cache() {
        for kernel in Kernel::all_available() {
            let k = 512;
            let taps = 9;
            let a = vec![to_bf16(0.5); taps * 32 * k];
            let b = vec![pack_pair(0.25, 0.5); k / 2 * 64 + 64];
            let offsets: Vec<usize> = (0..taps).map(|t| t % 3).collect();
            let mut c = vec![0f32; 32 * 32];
            let session = Session::start(kernel);
            let reps = 2000;
            let started = std::time::Instant::now();
            for _ in 0..reps {
                // SAFETY: the kernel is available (`all_available`). Tap t's A, 32 × k at
                // t·32·k (row stride k), lies in `a` (taps·32·k); its B, k/2 rows of 32 pairs at
                // row stride 64 from offset t % 3 ≤ 2, ends before k/2·64 + 64 = b.len(); C is
                // 32 × 32 (row stride 32), all of the separate `c`.
                unsafe { block(&session, (32, 32, k), (a.as_ptr(), k, 32 * k), (b.as_ptr(), 64, &offsets), (c.as_mut_ptr(), 32)) };
            }
            let seconds = started.elapsed().as_secs_f64();
            let flops = 2.0 * (32 * 32 * k * taps * reps) as f64;
            eprintln!("{kernel}: {:.0} GFLOP/s on one thread", flops / seconds / 1e9);
        }
    }
}
