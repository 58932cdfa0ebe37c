// SPDX-License-Identifier: GPL-2.0
/*
 * VGA devices (features/vga.rs, primitives/vga.rs): firmware framebuffer eviction, the VGA
 * arbiter (client registration, legacy decoding, locking) and the legacy VGA windows. Most of
 * these are static inlines or stubs that depend on CONFIG_VGA_ARB, CONFIG_APERTURE_HELPERS and
 * CONFIG_VFIO_PCI_VGA, so the shims compile on any kernel and do what upstream does there.
 */
#include <linux/aperture.h>
#include <linux/io.h>
#include <linux/pci.h>
#include <linux/vgaarb.h>

/* Whether the kernel offers the legacy VGA region at all (upstream: CONFIG_VFIO_PCI_VGA). */
bool vfio_pci_common_vga_region_supported(void);
bool vfio_pci_common_vga_region_supported(void)
{
	return IS_ENABLED(CONFIG_VFIO_PCI_VGA);
}

int vfio_pci_common_aperture_remove(struct pci_dev *pdev, const char *name);
int vfio_pci_common_aperture_remove(struct pci_dev *pdev, const char *name)
{
	return aperture_remove_conflicting_pci_devices(pdev, name);
}

int vfio_pci_common_vga_client_register(struct pci_dev *pdev,
					unsigned int (*set_decode)(struct pci_dev *pdev, bool single_vga));
int vfio_pci_common_vga_client_register(struct pci_dev *pdev,
					unsigned int (*set_decode)(struct pci_dev *pdev, bool single_vga))
{
	return vga_client_register(pdev, set_decode);
}

void vfio_pci_common_vga_client_unregister(struct pci_dev *pdev);
void vfio_pci_common_vga_client_unregister(struct pci_dev *pdev)
{
	vga_client_unregister(pdev);
}

void vfio_pci_common_vga_set_legacy_decoding(struct pci_dev *pdev, unsigned int decodes);
void vfio_pci_common_vga_set_legacy_decoding(struct pci_dev *pdev, unsigned int decodes)
{
	vga_set_legacy_decoding(pdev, decodes);
}

int vfio_pci_common_vga_get_interruptible(struct pci_dev *pdev, unsigned int rsrc);
int vfio_pci_common_vga_get_interruptible(struct pci_dev *pdev, unsigned int rsrc)
{
	return vga_get_interruptible(pdev, rsrc);
}

void vfio_pci_common_vga_put(struct pci_dev *pdev, unsigned int rsrc);
void vfio_pci_common_vga_put(struct pci_dev *pdev, unsigned int rsrc)
{
	vga_put(pdev, rsrc);
}

bool vfio_pci_common_on_root_bus(struct pci_dev *pdev);
bool vfio_pci_common_on_root_bus(struct pci_dev *pdev)
{
	return pci_is_root_bus(pdev->bus);
}

/*
 * Whether another VGA-class device, not on a root bus and in the same domain, sits on a bus
 * at or below pdev's (the bus range up to pdev's bus's highest subordinate): then pdev cannot
 * give up legacy decoding, since routing at the bridge would cut that device off too. Called
 * from the arbiter's set_decode callback, under its spinlock: nothing here sleeps.
 */
bool vfio_pci_common_vga_other_below(struct pci_dev *pdev);
bool vfio_pci_common_vga_other_below(struct pci_dev *pdev)
{
	unsigned char max_busnr = pci_bus_max_busnr(pdev->bus);
	struct pci_dev *tmp = NULL;

	while ((tmp = pci_get_class(PCI_CLASS_DISPLAY_VGA << 8, tmp)) != NULL) {
		if (tmp == pdev ||
		    pci_domain_nr(tmp->bus) != pci_domain_nr(pdev->bus) ||
		    pci_is_root_bus(tmp->bus))
			continue;
		if (tmp->bus->number >= pdev->bus->number &&
		    tmp->bus->number <= max_busnr) {
			pci_dev_put(tmp);
			return true;
		}
	}
	return false;
}

/* The legacy windows: memory 0xa0000-0xbffff mapped, or I/O ports as an iomap cookie. */
void __iomem *vfio_pci_common_vga_map(bool ioport, unsigned long start, unsigned long len);
void __iomem *vfio_pci_common_vga_map(bool ioport, unsigned long start, unsigned long len)
{
	return ioport ? ioport_map(start, len) : ioremap(start, len);
}

void vfio_pci_common_vga_unmap(bool ioport, void __iomem *io);
void vfio_pci_common_vga_unmap(bool ioport, void __iomem *io)
{
	if (ioport)
		ioport_unmap(io);
	else
		iounmap(io);
}
