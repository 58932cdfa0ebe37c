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
 * BAR access. 8-byte accesses go through ioread64/iowrite64 as upstream vfio-pci builds them:
 * with <linux/io-64-nonatomic-lo-hi.h>, which on x86_64 makes them two 32-bit accesses, low
 * half first (lib/iomap.c exports no native ioread64).
 */
#include <linux/io.h>
#include <linux/io-64-nonatomic-lo-hi.h>

u64 vfio_pci_common_ioread64(void __iomem *addr);
u64 vfio_pci_common_ioread64(void __iomem *addr)
{
	return ioread64(addr);
}

void vfio_pci_common_iowrite64(u64 val, void __iomem *addr);
void vfio_pci_common_iowrite64(u64 val, void __iomem *addr)
{
	iowrite64(val, addr);
}

/* mmap of BARs: the vma fields bindgen puts in anonymous unions, and the inline setters. */
#include <linux/mm.h>

struct vfio_pci_common_vma {
	unsigned long start;
	unsigned long end;
	unsigned long pgoff;
	bool shared;
};

void vfio_pci_common_vma_get(struct vm_area_struct *vma, struct vfio_pci_common_vma *out);
void vfio_pci_common_vma_get(struct vm_area_struct *vma, struct vfio_pci_common_vma *out)
{
	out->start = vma->vm_start;
	out->end = vma->vm_end;
	out->pgoff = vma->vm_pgoff;
	out->shared = !!(vma->vm_flags & VM_SHARED);
}

/* What upstream's vfio_pci_core_mmap() sets up: uncached, PFN-mapped, never expanded/dumped. */
void vfio_pci_common_vma_prepare(struct vm_area_struct *vma,
				 const struct vm_operations_struct *ops, void *priv);
void vfio_pci_common_vma_prepare(struct vm_area_struct *vma,
				 const struct vm_operations_struct *ops, void *priv)
{
	vma->vm_private_data = priv;
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	vma->vm_page_prot = pgprot_decrypted(vma->vm_page_prot);
	vm_flags_set(vma, VM_ALLOW_ANY_UNCACHED | VM_IO | VM_PFNMAP |
			  VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = ops;
}

struct vm_area_struct *vfio_pci_common_vmf_vma(struct vm_fault *vmf, unsigned long *address);
struct vm_area_struct *vfio_pci_common_vmf_vma(struct vm_fault *vmf, unsigned long *address)
{
	*address = vmf->address;
	return vmf->vma;
}

/* Drops every user mapping of the device's BARs (upstream vfio_pci_zap_bars()). */
void vfio_pci_common_zap(struct vfio_device *vdev, loff_t start, loff_t len);
void vfio_pci_common_zap(struct vfio_device *vdev, loff_t start, loff_t len)
{
	unmap_mapping_range(vdev->inode->i_mapping, start, len, true);
}

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

/* The state mutex of common/state_lock.rs: one lockdep class for every device's. */
void vfio_pci_common_state_mutex_init(struct mutex *m);
void vfio_pci_common_state_mutex_init(struct mutex *m)
{
	mutex_init(m);
}

void vfio_pci_common_mutex_lock(struct mutex *m);
void vfio_pci_common_mutex_lock(struct mutex *m)
{
	mutex_lock(m);
}

/* One of several members' state mutexes, under the dev_set lock (hot reset). */
void vfio_pci_common_mutex_lock_in_set(struct mutex *m, struct vfio_device *vdev);
void vfio_pci_common_mutex_lock_in_set(struct mutex *m, struct vfio_device *vdev)
{
	lockdep_assert_held(&vdev->dev_set->lock);
	mutex_lock_nest_lock(m, &vdev->dev_set->lock);
}

void vfio_pci_common_mutex_unlock(struct mutex *m);
void vfio_pci_common_mutex_unlock(struct mutex *m)
{
	mutex_unlock(m);
}
