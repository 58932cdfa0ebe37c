// SPDX-License-Identifier: GPL-2.0
//! Fuzz target: a generated device (config image, capability chains, host resources) and an
//! access sequence, both decoded from the input; must never panic, and every invariant of
//! `vfio_pci_logic::fake::run` must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vfio_pci_logic::fake::run(data);
});
