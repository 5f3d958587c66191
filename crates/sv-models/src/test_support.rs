//! What the unit tests of the kernels share.

/// `count` shapes whose axis `i` is drawn uniformly from `1..=max[i]` by a seeded linear
/// congruential generator, so every run tests the same sample.
pub(crate) fn sampled_dims<const N: usize>(
    seed: u64,
    count: usize,
    max: [usize; N],
) -> Vec<[usize; N]> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            max.map(|n| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                1 + (state >> 33) as usize % n
            })
        })
        .collect()
}
