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
#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/msi.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

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

/*
 * Interrupts (intrs.rs). spin_lock_irqsave() and friends are macros (and on UP kernels the
 * _raw_ functions behind them are macros too), pci_intx_mask_supported() and
 * irq_{set,clear}_status_flags() are static inlines, and kasprintf() is variadic: these
 * wrappers give Rust one plain function each. None is exported: only the common module needs
 * them.
 */
void vfio_pci_common_spin_lock_init(spinlock_t *lock);
void vfio_pci_common_spin_lock_init(spinlock_t *lock)
{
	spin_lock_init(lock);
}

unsigned long vfio_pci_common_spin_lock_irqsave(spinlock_t *lock);
unsigned long vfio_pci_common_spin_lock_irqsave(spinlock_t *lock)
{
	unsigned long flags;

	spin_lock_irqsave(lock, flags);
	return flags;
}

void vfio_pci_common_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags);
void vfio_pci_common_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags)
{
	spin_unlock_irqrestore(lock, flags);
}

bool vfio_pci_common_intx_mask_supported(struct pci_dev *pdev);
bool vfio_pci_common_intx_mask_supported(struct pci_dev *pdev)
{
	return pci_intx_mask_supported(pdev);
}

/* An exclusive INTx line is masked at the irqchip at once, not lazily (upstream does this). */
void vfio_pci_common_irq_disable_unlazy(unsigned int irq, bool set);
void vfio_pci_common_irq_disable_unlazy(unsigned int irq, bool set)
{
	if (set)
		irq_set_status_flags(irq, IRQ_DISABLE_UNLAZY);
	else
		irq_clear_status_flags(irq, IRQ_DISABLE_UNLAZY);
}

/* Rewrites an allocated MSI-X vector's message, in case a reset behind our back cleared it. */
void vfio_pci_common_msi_refresh(unsigned int irq);
void vfio_pci_common_msi_refresh(unsigned int irq)
{
	struct msi_msg msg;

	get_cached_msi_msg(irq, &msg);
	pci_write_msi_msg(irq, &msg);
}

/* "vfio-<kind>(<bdf>)" or "vfio-<kind>[<vector>](<bdf>)", as upstream names its interrupts. */
char *vfio_pci_common_irq_name(struct pci_dev *pdev, const char *kind, int vector);
char *vfio_pci_common_irq_name(struct pci_dev *pdev, const char *kind, int vector)
{
	if (vector < 0)
		return kasprintf(GFP_KERNEL_ACCOUNT, "vfio-%s(%s)", kind, pci_name(pdev));
	return kasprintf(GFP_KERNEL_ACCOUNT, "vfio-%s[%d](%s)", kind, vector, pci_name(pdev));
}
