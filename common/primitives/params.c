// SPDX-License-Identifier: GPL-2.0
/*
 * Module parameters of vfio_pci_common, with upstream vfio-pci's names and meaning. The 6.12
 * Rust module! macro has no parameters, so they live here (this file is part of the composite
 * module, so they appear as /sys/module/vfio_pci_common/parameters/<name> and are set with
 * "modprobe vfio_pci_common nointxmask=1" or "vfio_pci_common.nointxmask=1"). Rust reads them
 * through the accessors below, at the moment upstream reads them.
 */
#include <linux/module.h>
#include <linux/moduleparam.h>

static bool nointxmask;
module_param_named(nointxmask, nointxmask, bool, 0644);
MODULE_PARM_DESC(nointxmask,
		 "Disable support for PCI 2.3 style INTx masking.  If this resolves problems for specific devices, report lspci -vvvxxx to linux-pci@vger.kernel.org so the device can be fixed automatically via the broken_intx_masking flag.");

static bool disable_vga;
module_param(disable_vga, bool, 0444);
MODULE_PARM_DESC(disable_vga, "Disable VGA resource access through vfio-pci");

static bool disable_idle_d3;
module_param(disable_idle_d3, bool, 0644);
MODULE_PARM_DESC(disable_idle_d3,
		 "Disable using the PCI D3 low power state for idle, unused devices");

/* Read at every open, as upstream's vfio_pci_core_enable() reads it. */
bool vfio_pci_common_param_nointxmask(void);
bool vfio_pci_common_param_nointxmask(void)
{
	return READ_ONCE(nointxmask);
}

/* Read once per device at registration, as upstream's vfio_pci_core_init_dev() does. */
bool vfio_pci_common_param_disable_idle_d3(void);
bool vfio_pci_common_param_disable_idle_d3(void)
{
	return READ_ONCE(disable_idle_d3);
}

/* Read-only after load (0444): the VGA region and the arbiter's decode answer. */
bool vfio_pci_common_param_disable_vga(void);
bool vfio_pci_common_param_disable_vga(void)
{
	return READ_ONCE(disable_vga);
}
