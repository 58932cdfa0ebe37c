// SPDX-License-Identifier: GPL-2.0
//! The module parameters `nointxmask`, `disable_vga` and `disable_idle_d3`, with upstream
//! vfio-pci's names and meaning. The 6.12 `module!` macro takes no parameters, so they are
//! declared with `module_param` in `params.c` (part of this module, so they show up under
//! `/sys/module/vfio_pci_common/parameters/`) and read here at the moments upstream reads them.

extern "C" {
    fn vfio_pci_common_param_nointxmask() -> bool;
    fn vfio_pci_common_param_disable_idle_d3() -> bool;
    fn vfio_pci_common_param_disable_vga() -> bool;
}

/// `nointxmask`: do not use PCI 2.3 INTx masking (nor the broken-INTx quirk list); INTx is
/// then masked at the interrupt controller, which needs an exclusive line. Read at every open.
pub(crate) fn nointxmask() -> bool {
    // SAFETY: reads a bool parameter; no arguments.
    unsafe { vfio_pci_common_param_nointxmask() }
}

/// `disable_idle_d3`: keep closed devices in D0 instead of letting runtime PM put them in
/// D3hot. Read once per device at registration, as upstream does.
pub(crate) fn disable_idle_d3() -> bool {
    // SAFETY: reads a bool parameter; no arguments.
    unsafe { vfio_pci_common_param_disable_idle_d3() }
}

/// `disable_vga`: no legacy VGA region for VGA devices, and VGA devices behind a bridge may
/// tell the arbiter they do not decode legacy ranges. Read-only after load, as upstream's.
pub(crate) fn disable_vga() -> bool {
    // SAFETY: reads a bool parameter; no arguments.
    unsafe { vfio_pci_common_param_disable_vga() }
}
