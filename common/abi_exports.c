// SPDX-License-Identifier: GPL-2.0
/*
 * The C ABI of vfio_pci_common (see abi.rs). The functions are written in Rust with
 * #[no_mangle]; C only has to list them for EXPORT_SYMBOL_GPL. The declarations use a
 * placeholder type on purpose, as the kernel's own rust/exports.c does: nothing in C calls them.
 */
#include <linux/export.h>

#define EXPORT_RUST_GPL(sym) extern int sym; EXPORT_SYMBOL_GPL(sym)

EXPORT_RUST_GPL(vfio_pci_common_abi_version);
EXPORT_RUST_GPL(vfio_pci_common_variant_register);
EXPORT_RUST_GPL(vfio_pci_common_variant_unregister);
EXPORT_RUST_GPL(vfio_pci_common_device_register);
EXPORT_RUST_GPL(vfio_pci_common_mediated_register);
EXPORT_RUST_GPL(vfio_pci_common_device_unregister);
EXPORT_RUST_GPL(vfio_pci_common_error_detected);
EXPORT_RUST_GPL(vfio_pci_common_sriov_configure);
EXPORT_RUST_GPL(vfio_pci_common_mmio);
EXPORT_RUST_GPL(vfio_pci_common_config);
EXPORT_RUST_GPL(vfio_pci_common_set_overlay);
EXPORT_RUST_GPL(vfio_pci_common_hide_cap);
EXPORT_RUST_GPL(vfio_pci_common_reset_handler);
