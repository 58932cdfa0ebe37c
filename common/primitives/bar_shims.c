// SPDX-License-Identifier: GPL-2.0
/*
 * BAR access and mmap (features/bar.rs, bar_map.rs): 64-bit MMIO accessors, the vma fields
 * bindgen cannot reach, and the zap of user mappings.
 */
#include <linux/pci.h>
#include <linux/vfio.h>

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
	bool readable;
	bool writable;
};

void vfio_pci_common_vma_get(struct vm_area_struct *vma, struct vfio_pci_common_vma *out);
void vfio_pci_common_vma_get(struct vm_area_struct *vma, struct vfio_pci_common_vma *out)
{
	out->start = vma->vm_start;
	out->end = vma->vm_end;
	out->pgoff = vma->vm_pgoff;
	out->shared = !!(vma->vm_flags & VM_SHARED);
	out->readable = !!(vma->vm_flags & VM_READ);
	out->writable = !!(vma->vm_flags & VM_WRITE);
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
 * mmap of a memory BAR (features/memory_bar.rs), as upstream nvgrace_gpu_mmap(): the frames
 * mapped at once, write-combined for uncached memory, and vm_pgoff set to the first frame
 * (what remap_pfn_range() wants of a private, copy-on-write mapping).
 */
int vfio_pci_common_remap_memory(struct vm_area_struct *vma, u64 pfn, bool write_combine);
int vfio_pci_common_remap_memory(struct vm_area_struct *vma, u64 pfn, bool write_combine)
{
	int ret;

	if (write_combine) {
		vm_flags_set(vma, VM_ALLOW_ANY_UNCACHED);
		vma->vm_page_prot = pgprot_writecombine(vma->vm_page_prot);
	}
	ret = remap_pfn_range(vma, vma->vm_start, pfn, vma->vm_end - vma->vm_start,
			      vma->vm_page_prot);
	if (ret)
		return ret;
	vma->vm_pgoff = pfn;
	return 0;
}
