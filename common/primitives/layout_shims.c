// SPDX-License-Identifier: GPL-2.0
/*
 * The sizes of the kernel structures whose layout our Rust code relies on (layout.rs), so
 * module init can refuse to run with bindings that disagree with the compiler that built the
 * kernel (a wrong size would corrupt memory silently).
 */
#include <linux/pci.h>
#include <linux/vfio.h>
#include <linux/device.h>

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
