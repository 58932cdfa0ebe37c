// SPDX-License-Identifier: GPL-2.0
//! Power states of the open device (upstream `vfio_pci_set_power_state` and
//! `vfio_pci_probe_power_state`): D0 to D3hot and back, with config space saved and restored
//! around D3hot for devices that lose it there, and the SR-IOV rule that a PF with VFs stays in
//! D0. Callers hold the state mutex (the `PmState` borrow comes from it).

use crate::logic::pci_regs::{PM_CTRL, PM_CTRL_NO_SOFT_RESET};
use crate::primitives::pci_function::PciFunction;
use crate::state::PmState;
use kernel::error::Result;

/// `vfio_pci_probe_power_state`: a PM-capable function without NoSoftRst loses its state in
/// D3hot.
pub(crate) fn needs_pm_restore(pdev: &PciFunction) -> bool {
    match pdev.pm_cap() {
        0 => false,
        pm => pdev
            .read_config(u64::from(pm) + u64::from(PM_CTRL), 2)
            .is_ok_and(|ctrl| ctrl & PM_CTRL_NO_SOFT_RESET == 0),
    }
}

/// `vfio_pci_set_power_state`: moves the device to `state` (0 = D0 .. 3 = D3hot), saving its
/// config space on the way into D3hot and restoring it on the way back when the device loses
/// it there. With the state mutex held (the `pm` borrow comes from it); `sriov_active` is
/// `Sriov::active`, which `sriov_configure` sets under that mutex before enabling VFs.
pub(crate) fn set_power_state(
    pdev: &PciFunction,
    pm: &mut PmState,
    state: i32,
    sriov_active: bool,
) -> Result {
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
