// SPDX-License-Identifier: GPL-2.0
/*
 * Interrupt helpers (irq.rs, features/interrupts.rs): the IRQ-safe spinlock, INTx masking
 * support, lazy-disable control, MSI message refresh and interrupt names.
 */
#include <linux/pci.h>
#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/msi.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

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
