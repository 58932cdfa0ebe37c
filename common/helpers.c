// SPDX-License-Identifier: GPL-2.0
/*
 * C helpers of vfio_pci_common: the sizes of the kernel structures whose layout our Rust code
 * relies on, so module init can refuse to run with bindings that disagree with the compiler
 * that built the kernel (a wrong size would corrupt memory silently).
 */
#include <linux/pci.h>
#include <linux/vfio.h>
#include <linux/device.h>
#include <linux/export.h>

size_t vfio_pci_common_c_sizeof_vfio_device(void);
size_t vfio_pci_common_c_sizeof_vfio_device(void)
{
	return sizeof(struct vfio_device);
}

size_t vfio_pci_common_c_sizeof_pci_dev(void);
size_t vfio_pci_common_c_sizeof_pci_dev(void)
{
	return sizeof(struct pci_dev);
}

size_t vfio_pci_common_c_sizeof_pci_driver(void);
size_t vfio_pci_common_c_sizeof_pci_driver(void)
{
	return sizeof(struct pci_driver);
}

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
