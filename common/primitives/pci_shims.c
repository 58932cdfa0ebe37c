// SPDX-License-Identifier: GPL-2.0
/*
 * PCI function helpers (pci_function.rs, and the SDK's probe check) that are static inlines
 * or macros in C.
 */
#include <linux/pci.h>
#include <linux/device.h>
#include <linux/export.h>

/*
 * Whether @pdev's driver_override names the driver probing it. device_match_driver_override()
 * is a static inline taking the override's spinlock, so variants reach it through this export
 * (see abi.rs).
 */
bool vfio_pci_common_bound_by_override(struct pci_dev *pdev);
bool vfio_pci_common_bound_by_override(struct pci_dev *pdev)
{
	return pdev->dev.driver &&
	       device_match_driver_override(&pdev->dev, pdev->dev.driver) > 0;
}
EXPORT_SYMBOL_GPL(vfio_pci_common_bound_by_override);

const char *vfio_pci_common_pci_name(struct pci_dev *pdev);
const char *vfio_pci_common_pci_name(struct pci_dev *pdev)
{
	return pci_name(pdev);
}
