// SPDX-License-Identifier: GPL-2.0
//! Property tests of config emulation over generated devices (`fake`): host-owned bits never
//! change, the virtual chains stay acyclic, in bounds and exact, in-range reads never fail.

use super::fake;
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn xorshift_bytes(seed: u64, out: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for chunk in out.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for (b, v) in chunk.iter_mut().zip(x.to_le_bytes()) {
            *b = v;
        }
    }
}

/// The `cargo fuzz` body over pseudo-random inputs from a fixed seed, for a bounded time, so
/// the suite exercises the fuzz target without nightly.
#[test]
fn fuzz_body_survives_pseudo_random_inputs() {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = std::vec![0u8; 2048];
    let mut runs = 0u64;
    while runs < 20_000 && Instant::now() < deadline {
        let len = 64 + (runs as usize * 7919) % (buf.len() - 64);
        xorshift_bytes(runs, &mut buf[..len]);
        fake::run(&buf[..len]);
        runs += 1;
    }
    assert!(runs >= 500, "only {runs} runs in the time budget");
    std::eprintln!("fuzz body: {runs} inputs");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random access sequences on random well-formed devices keep every invariant.
    #[test]
    fn random_writes_never_touch_host_bits_or_break_chains(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fake::run(&data);
    }

    /// Re-initialising a used space gives what a fresh one gets, past `cfg_size` too.
    #[test]
    fn reinit_of_a_used_space_equals_a_fresh_init(data in prop::collection::vec(any::<u8>(), 0..8192)) {
        fake::reinit_matches_fresh(&data);
    }
}
