// SPDX-License-Identifier: GPL-2.0
//! Compile-time checks of a variant's constants. `Registration::ops` calls them while the
//! variant's `static` ops table is built, so a misconfigured constant fails the build (with
//! the message below) instead of failing every open with `-EINVAL`. The common module checks
//! the same rules again at run time for a variant built some other way.

use super::abi::{BarWindow, ConfigOverlay};

/// Config space is at most 4 KiB.
const CFG_SPACE_EXP_SIZE: u32 = 4096;
/// Overlays the common module accepts (`logic::overlay::MAX_OVERLAYS`).
const MAX_OVERLAYS: usize = 8;

/// `Variant::CONFIG_OVERLAYS`: 1 to 4 bytes inside one dword of config space, no two
/// overlapping, at most [`MAX_OVERLAYS`].
pub(super) const fn overlays(table: &[ConfigOverlay]) {
    assert!(
        table.len() <= MAX_OVERLAYS,
        "CONFIG_OVERLAYS: more than 8 overlays"
    );
    let mut i = 0;
    while i < table.len() {
        let o = &table[i];
        let start = o.offset as u32;
        let end = start + o.size as u32;
        assert!(
            o.size >= 1 && o.size <= 4,
            "CONFIG_OVERLAYS: an overlay is 1 to 4 bytes"
        );
        assert!(
            end <= CFG_SPACE_EXP_SIZE,
            "CONFIG_OVERLAYS: an overlay leaves config space"
        );
        assert!(
            start / 4 == (end - 1) / 4,
            "CONFIG_OVERLAYS: an overlay crosses a dword boundary"
        );
        let mut j = i + 1;
        while j < table.len() {
            let p = &table[j];
            let (ps, pe) = (p.offset as u32, p.offset as u32 + p.size as u32);
            assert!(
                pe <= start || ps >= end,
                "CONFIG_OVERLAYS: two overlays overlap"
            );
            j += 1;
        }
        i += 1;
    }
}

/// `Variant::BAR_WINDOWS`: each in BAR 0 to 5, non-empty, at most one per BAR, and only with
/// both `bar_window_read` and `bar_window_write` implemented.
pub(super) const fn bar_windows(table: &[BarWindow], has_hooks: bool) {
    assert!(
        table.is_empty() || has_hooks,
        "BAR_WINDOWS needs bar_window_read and bar_window_write"
    );
    let mut i = 0;
    while i < table.len() {
        let w = &table[i];
        assert!(w.bar < 6, "BAR_WINDOWS: a window is in BAR 0 to 5");
        assert!(w.len != 0, "BAR_WINDOWS: an empty window");
        assert!(
            w.flags & !super::abi::BAR_WINDOW_EMULATED_BAR == 0 && (w.flags == 0 || w.offset == 0),
            "BAR_WINDOWS: make windows with BarWindow::new or BarWindow::emulated_bar"
        );
        assert!(
            w.offset.checked_add(w.len).is_some(),
            "BAR_WINDOWS: a window past 64 bits"
        );
        let mut j = i + 1;
        while j < table.len() {
            assert!(table[j].bar != w.bar, "BAR_WINDOWS: two windows in one BAR");
            j += 1;
        }
        i += 1;
    }
}

/// `Variant::MEDIATED`: at most `MdevType::MAX_TYPES` types, and a type that lets the function
/// master the bus for MSI only with `BAR_WINDOWS` (which must mediate the device's DMA).
pub(super) const fn mediated(types: &[super::MdevType], has_windows: bool) {
    assert!(
        types.len() <= super::MdevType::MAX_TYPES,
        "MEDIATED: more types than MdevType::MAX_TYPES"
    );
    let mut i = 0;
    while i < types.len() {
        assert!(
            has_windows || !matches!(types[i].bus_master, super::MdevBusMaster::ForMsi),
            "MEDIATED: MdevBusMaster::ForMsi needs BAR_WINDOWS that mediate the device's DMA"
        );
        i += 1;
    }
}

/// The region hooks go together: `regions` needs `region_read` (every region is read through
/// it; the common module refuses the open otherwise), and `region_write` or `region_mmap`
/// without `regions` could never be called.
pub(super) const fn region_hooks(regions: bool, read: bool, write: bool, mmap: bool) {
    assert!(!regions || read, "regions needs region_read");
    assert!(
        regions || !(read || write || mmap),
        "region_read, region_write and region_mmap need regions"
    );
}
