//! Per-sample randomness: a PCG generator seeded from (seed, sample id, epoch) alone, so
//! reruns are identical and the number or order of workers does not matter.

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// The random source of one sample's augmentation.
#[derive(Debug, Clone)]
pub struct AugRng(Pcg64Mcg);

impl AugRng {
    /// The generator of `sample_id` in `epoch` under `seed`.
    pub fn for_sample(seed: u64, sample_id: &str, epoch: u64) -> Self {
        // FNV-1a over the key, then PCG's own seeding spreads it.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in seed
            .to_le_bytes()
            .iter()
            .chain(epoch.to_le_bytes().iter())
            .chain(sample_id.as_bytes())
        {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Self(Pcg64Mcg::seed_from_u64(h))
    }

    /// A generator from a plain seed.
    pub fn from_seed(seed: u64) -> Self {
        Self(Pcg64Mcg::seed_from_u64(seed))
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [lo, hi] (inclusive).
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + (self.unit() * (hi - lo + 1) as f64)
            .floor()
            .min((hi - lo) as f64) as i64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal in `f32` (ziggurat), for per-pixel noise.
    pub fn normal_f32(&mut self) -> f32 {
        rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut self.0)
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
