// SPDX-License-Identifier: GPL-2.0
//! [`Inner`]: every piece of per-device state that changes while the device is bound, kept
//! behind the one mutex of [`crate::device::DeviceState`].

use crate::abi::{RegionDesc, MAX_REGIONS};
use crate::logic::config_space::ConfigSpace;
use crate::pci::{PciDev, SavedState};
use kernel::alloc::{flags, KBox};
use kernel::error::Result;

/// `PCI_PM_CTRL` offset inside the PM capability.
const PCI_PM_CTRL: u64 = 4;
/// `PCI_PM_CTRL_NO_SOFT_RESET`: the function keeps its state across D3hot -> D0.
const PCI_PM_CTRL_NO_SOFT_RESET: u32 = 0x0008;

/// Power-management state of the device (upstream `needs_pm_restore`, `pm_save`).
pub(crate) struct PmState {
    /// The device loses its config state on D3hot -> D0 (PM capability without
    /// NoSoftRst): we save it on the way down and restore it on the way up.
    pub(crate) needs_pm_restore: bool,
    /// Config space saved on entering D3hot.
    pub(crate) pm_save: Option<SavedState>,
}

/// The space every device starts with, before its first open builds it from the device.
/// (Earlier versions zero-filled the allocation instead, which relied on all-zero bytes being
/// a valid `ConfigSpace`: nothing guarantees that for its enum fields.)
static EMPTY_CONFIG: ConfigSpace = ConfigSpace::zeroed();
// The byte copy in `Inner::new` is only a valid duplicate of a value that owns nothing.
const _: () = assert!(!core::mem::needs_drop::<ConfigSpace>());

/// See the module documentation.
pub(crate) struct Inner {
    /// Whether a function reset worked at open (`VFIO_DEVICE_FLAGS_RESET`).
    pub(crate) reset_works: bool,
    /// Config space as it was at open, restored at close.
    pub(crate) saved: Option<SavedState>,
    /// Whether `open` completed (so `close` has something to undo).
    pub(crate) enabled: bool,
    /// The virtual config space; built at every open, kept (with what it learnt about the
    /// device) from probe to remove, like upstream's `vdev`.
    pub(crate) config: KBox<ConfigSpace>,
    /// Power management.
    pub(crate) pm: PmState,
    /// BAR mappings and mmap rules of the open device.
    pub(crate) bars: crate::bar::BarState,
    /// The variant's device-specific regions of this open (`n_regions` used).
    pub(crate) regions: [RegionDesc; MAX_REGIONS],
    /// How many of `regions` are in use.
    pub(crate) n_regions: usize,
}

impl Inner {
    /// The state of a freshly probed device.
    pub(crate) fn new(pdev: &PciDev) -> Result<Self> {
        let mut config = KBox::<ConfigSpace>::new_uninit(flags::GFP_KERNEL)?;
        // Copied from a static to keep the 8 KiB value off the kernel stack. `ConfigSpace`
        // needs no drop and owns nothing (checked at compile time above), so a byte copy of a
        // valid one is a valid, independent value.
        // SAFETY: `EMPTY_CONFIG` is a valid `ConfigSpace`; the destination is a fresh
        // allocation of exactly one `ConfigSpace`, initialised by the copy.
        let config = unsafe {
            core::ptr::copy_nonoverlapping(&EMPTY_CONFIG, config.as_mut_ptr(), 1);
            config.assume_init()
        };
        Ok(Self {
            reset_works: false,
            saved: None,
            enabled: false,
            config,
            pm: PmState { needs_pm_restore: needs_pm_restore(pdev), pm_save: None },
            bars: crate::bar::BarState::default(),
            regions: [RegionDesc::new(0, 0, 0, 0); MAX_REGIONS],
            n_regions: 0,
        })
    }

    /// Whether user space may access memory BARs now (upstream `__vfio_pci_memory_enabled`):
    /// the device is above D3hot and its virtual COMMAND has memory decode on (or it has no
    /// memory-enable bit).
    pub(crate) fn memory_enabled(&self, pdev: &PciDev) -> bool {
        self.config.memory_enabled(pdev.current_state() < 3)
    }

    /// Device-specific region `index` (0-based among them) of this open.
    pub(crate) fn region(&self, index: usize) -> Option<&RegionDesc> {
        self.regions.get(..self.n_regions).and_then(|r| r.get(index))
    }
}

/// `vfio_pci_probe_power_state`: a PM-capable function without NoSoftRst loses its state in
/// D3hot.
fn needs_pm_restore(pdev: &PciDev) -> bool {
    match pdev.pm_cap() {
        0 => false,
        pm => pdev
            .read_config(u64::from(pm) + PCI_PM_CTRL, 2)
            .is_ok_and(|ctrl| ctrl & PCI_PM_CTRL_NO_SOFT_RESET == 0),
    }
}

/// `vfio_pci_set_power_state`: moves the device to `state` (0 = D0 .. 3 = D3hot), saving its
/// config space on the way into D3hot and restoring it on the way back when the device loses
/// it there. With the state mutex held (the `pm` borrow comes from it); `sriov_active` is
/// `Sriov::active`, which `sriov_configure` sets under that mutex before enabling VFs.
pub(crate) fn set_power_state(pdev: &PciDev, pm: &mut PmState, state: i32, sriov_active: bool) -> Result {
    const D0: i32 = 0;
    const D3HOT: i32 = 3;
    crate::logic::lifecycle::power_change_allowed(sriov_active, state)
        .map_err(|e| kernel::error::Error::from_errno(-e.0))?;
    let mut needs_save = false;
    let mut needs_restore = false;
    if pm.needs_pm_restore {
        let cur = pdev.current_state();
        if cur < D3HOT && state >= D3HOT {
            pdev.save_current_state();
            needs_save = true;
        }
        if cur >= D3HOT && state <= D0 {
            needs_restore = true;
        }
    }
    pdev.set_power_state(state)?;
    // D3 might be unsupported through a quirk: only keep a copy if the device is really there.
    if needs_save && pdev.current_state() >= D3HOT {
        pm.pm_save = pdev.save_state();
    } else if needs_restore {
        if let Some(saved) = pm.pm_save.take() {
            let _ = pdev.load_saved_state(saved);
        }
        pdev.restore_state();
    }
    Ok(())
}
