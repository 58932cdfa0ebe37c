// SPDX-License-Identifier: GPL-2.0
/*
 * dev_sets and resets (features/hot_reset.rs, open_close.rs): what needs the kernel's list
 * macros, static inlines or bit fields. Nothing here decides a user-visible answer on its own:
 * argument rules are in logic/src/lifecycle.rs.
 */
#include <linux/pci.h>
#include <linux/vfio.h>
#include <linux/file.h>
#include <linux/iommu.h>
#include <linux/slab.h>

/*
 * dev_sets. The VFIO core groups devices that share a reset into a vfio_device_set keyed by an
 * opaque pointer; upstream vfio-pci keys by its own vdev (root bus, VFs), by the pci_slot, or by
 * the pci_bus, and then treats every member of a set as a vfio_pci_core_device. A set holding
 * both its devices and ours would make upstream read our memory as its struct (and us its).
 * So our keys are the same objects with the low bit set: struct pointers are at least
 * 2-aligned, so no upstream key (or any other driver's) can equal one of ours. Consequence:
 * devices sharing a bus split between vfio-pci and our drivers are in two sets, neither of
 * which covers the bus, so a hot reset is refused in both (as upstream refuses it when another
 * driver holds a device of the bus).
 */
#define VFIO_PCI_COMMON_SET_TAG 1UL

int vfio_pci_common_assign_dev_set(struct vfio_device *vdev, struct pci_dev *pdev);
int vfio_pci_common_assign_dev_set(struct vfio_device *vdev, struct pci_dev *pdev)
{
	void *key;

	if (pci_is_root_bus(pdev->bus) || pdev->is_virtfn)
		key = vdev;
	else if (!pci_probe_reset_slot(pdev->slot))
		key = pdev->slot;
	else
		key = pdev->bus;
	return vfio_assign_device_set(vdev, (void *)((unsigned long)key | VFIO_PCI_COMMON_SET_TAG));
}

/* Which reset a hot reset of @pdev would be: 1 slot, 0 bus, -ENODEV neither. */
int vfio_pci_common_reset_scope(struct pci_dev *pdev);
int vfio_pci_common_reset_scope(struct pci_dev *pdev)
{
	if (!pci_probe_reset_slot(pdev->slot))
		return 1;
	if (pci_probe_reset_bus(pdev->bus))
		return -ENODEV;
	return 0;
}

/* Every PCI function a slot (@slot true) or bus reset of @pdev affects. */
struct vpc_walk {
	struct pci_dev *pdev;
	bool slot;
	int (*fn)(struct pci_dev *pdev, void *data);
	void *data;
	int ret;
};

static bool vpc_below_slot(struct pci_dev *pdev, struct pci_slot *slot)
{
	for (; pdev; pdev = pdev->bus->self)
		if (pdev->bus == slot->bus)
			return pdev->slot == slot;
	return false;
}

static int vpc_walk_one(struct pci_dev *pdev, void *data)
{
	struct vpc_walk *w = data;

	if (!w->slot || vpc_below_slot(pdev, w->pdev->slot))
		w->ret = w->fn(pdev, w->data);
	return w->ret;
}

static int vpc_walk(struct pci_dev *pdev, bool slot, int (*fn)(struct pci_dev *, void *), void *data)
{
	struct vpc_walk w = { .pdev = pdev, .slot = slot, .fn = fn, .data = data };

	pci_walk_bus(pdev->bus, vpc_walk_one, &w);
	return w.ret;
}

static int vpc_count_one(struct pci_dev *pdev, void *data)
{
	(*(u32 *)data)++;
	return 0;
}

int vfio_pci_common_count_devs(struct pci_dev *pdev, bool slot, u32 *count);
int vfio_pci_common_count_devs(struct pci_dev *pdev, bool slot, u32 *count)
{
	*count = 0;
	return vpc_walk(pdev, slot, vpc_count_one, count);
}

struct vpc_fill {
	struct vfio_device *vdev;
	struct vfio_pci_dependent_device *devs;
	u32 n;
	u32 count;
	u32 flags;
};

static int vpc_fill_one(struct pci_dev *pdev, void *data)
{
	struct vpc_fill *f = data;
	struct vfio_pci_dependent_device *d;

	/* The topology changed since the count. */
	if (f->count >= f->n)
		return -EAGAIN;
	d = &f->devs[f->count++];
	d->segment = pci_domain_nr(pdev->bus);
	d->bus = pdev->bus->number;
	d->devfn = pdev->devfn;
	if (f->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID) {
		struct iommufd_ctx *ictx = vfio_iommufd_device_ictx(f->vdev);
		struct vfio_device *other = vfio_find_device_in_devset(f->vdev->dev_set, &pdev->dev);

		if (!other) {
			d->devid = VFIO_PCI_DEVID_NOT_OWNED;
		} else {
			int id = vfio_iommufd_get_dev_id(other, ictx);

			if (id > 0)
				d->devid = id;
			else if (id == -ENOENT)
				d->devid = VFIO_PCI_DEVID_OWNED;
			else
				d->devid = VFIO_PCI_DEVID_NOT_OWNED;
		}
		if (d->devid == VFIO_PCI_DEVID_NOT_OWNED)
			f->flags &= ~VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
	} else {
		struct iommu_group *group = iommu_group_get(&pdev->dev);

		/* A function without a group is not isolated: no reset for anyone. */
		if (!group)
			return -EPERM;
		d->group_id = iommu_group_id(group);
		iommu_group_put(group);
	}
	return 0;
}

/*
 * Fills up to @n entries of @devs for a hot reset of @pdev (the device of @vdev), under the
 * dev_set lock; *@count and *@flags are what GET_PCI_HOT_RESET_INFO reports.
 */
int vfio_pci_common_fill_devs(struct vfio_device *vdev, struct pci_dev *pdev, bool slot,
			      struct vfio_pci_dependent_device *devs, u32 n, u32 *count, u32 *flags);
int vfio_pci_common_fill_devs(struct vfio_device *vdev, struct pci_dev *pdev, bool slot,
			      struct vfio_pci_dependent_device *devs, u32 n, u32 *count, u32 *flags)
{
	struct vpc_fill f = { .vdev = vdev, .devs = devs, .n = n };
	int ret;

	if (vfio_device_cdev_opened(vdev))
		f.flags = VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
	mutex_lock(&vdev->dev_set->lock);
	ret = vpc_walk(pdev, slot, vpc_fill_one, &f);
	mutex_unlock(&vdev->dev_set->lock);
	*count = f.count;
	*flags = f.flags;
	return ret;
}

bool vfio_pci_common_cdev_opened(struct vfio_device *vdev);
bool vfio_pci_common_cdev_opened(struct vfio_device *vdev)
{
	return vfio_device_cdev_opened(vdev);
}

/* The dev_set of @vdev: its lock, its open count, its members. */
void vfio_pci_common_dev_set_lock(struct vfio_device *vdev);
void vfio_pci_common_dev_set_lock(struct vfio_device *vdev)
{
	mutex_lock(&vdev->dev_set->lock);
}

void vfio_pci_common_dev_set_unlock(struct vfio_device *vdev);
void vfio_pci_common_dev_set_unlock(struct vfio_device *vdev)
{
	mutex_unlock(&vdev->dev_set->lock);
}

unsigned int vfio_pci_common_dev_set_open_count(struct vfio_device *vdev);
unsigned int vfio_pci_common_dev_set_open_count(struct vfio_device *vdev)
{
	return vfio_device_set_open_count(vdev->dev_set);
}

/* Calls @fn for every member of @vdev's set (list order) until one returns non-zero. */
int vfio_pci_common_dev_set_for_each(struct vfio_device *vdev,
				     int (*fn)(struct vfio_device *member, void *data), void *data);
int vfio_pci_common_dev_set_for_each(struct vfio_device *vdev,
				     int (*fn)(struct vfio_device *member, void *data), void *data)
{
	struct vfio_device *cur;
	int ret;

	lockdep_assert_held(&vdev->dev_set->lock);
	list_for_each_entry(cur, &vdev->dev_set->device_list, dev_set_list) {
		ret = fn(cur, data);
		if (ret)
			return ret;
	}
	return 0;
}

static int vpc_in_set(struct pci_dev *pdev, void *data)
{
	return vfio_find_device_in_devset(data, &pdev->dev) ? 0 : -ENODEV;
}

/*
 * The function to pass to pci_reset_bus() if a slot or bus reset is possible and every PCI
 * function it affects is a member of @vdev's set (so every driver involved is ours and can
 * take part), NULL otherwise. With the set's lock held.
 */
struct pci_dev *vfio_pci_common_dev_set_resettable(struct vfio_device *vdev);
struct pci_dev *vfio_pci_common_dev_set_resettable(struct vfio_device *vdev)
{
	struct vfio_device_set *set = vdev->dev_set;
	struct vfio_device *first;
	struct pci_dev *pdev;
	bool slot;

	lockdep_assert_held(&set->lock);
	first = list_first_entry(&set->device_list, struct vfio_device, dev_set_list);
	pdev = to_pci_dev(first->dev);
	slot = !pci_probe_reset_slot(pdev->slot);
	if (!slot && pci_probe_reset_bus(pdev->bus))
		return NULL;
	if (vpc_walk(pdev, slot, vpc_in_set, set))
		return NULL;
	return pdev;
}

/* Ownership proofs of PCI_HOT_RESET. */
int vfio_pci_common_group_files_get(const s32 *fds, u32 n, struct file **files);
int vfio_pci_common_group_files_get(const s32 *fds, u32 n, struct file **files)
{
	u32 i;

	for (i = 0; i < n; i++) {
		struct file *file = fget(fds[i]);
		int ret = 0;

		if (!file)
			ret = -EBADF;
		else if (!vfio_file_is_group(file)) {
			fput(file);
			ret = -EINVAL;
		}
		if (ret) {
			while (i--)
				fput(files[i]);
			return ret;
		}
		files[i] = file;
	}
	return 0;
}

void vfio_pci_common_files_put(struct file **files, u32 n);
void vfio_pci_common_files_put(struct file **files, u32 n)
{
	u32 i;

	for (i = 0; i < n; i++)
		fput(files[i]);
}

bool vfio_pci_common_dev_in_files(struct vfio_device *vdev, struct file **files, u32 n);
bool vfio_pci_common_dev_in_files(struct vfio_device *vdev, struct file **files, u32 n)
{
	u32 i;

	for (i = 0; i < n; i++)
		if (vfio_file_has_dev(files[i], vdev))
			return true;
	return false;
}

/*
 * @vdev is bound to @ictx, or not bound at all while its group is owned by @ictx (then no other
 * iommufd can own it).
 */
bool vfio_pci_common_owned_by_ictx(struct vfio_device *vdev, struct vfio_device *caller);
bool vfio_pci_common_owned_by_ictx(struct vfio_device *vdev, struct vfio_device *caller)
{
	struct iommufd_ctx *ictx = vfio_iommufd_device_ictx(caller);
	int id;

	if (!ictx)
		return false;
	id = vfio_iommufd_get_dev_id(vdev, ictx);
	return id > 0 || id == -ENOENT;
}

/*
 * Function reset at close (upstream vfio_pci_core_disable): with the upstream bridge's and the
 * device's locks taken here if free, and without the save/restore pci_reset_function() does,
 * so the caller's restored state is what the device ends with. 0 when the reset happened.
 */
int vfio_pci_common_reset_if_unlocked(struct pci_dev *pdev);
int vfio_pci_common_reset_if_unlocked(struct pci_dev *pdev)
{
	struct pci_dev *bridge = pci_upstream_bridge(pdev);
	int ret = -EAGAIN;

	if (bridge && !pci_dev_trylock(bridge))
		return -EAGAIN;
	if (pci_dev_trylock(pdev)) {
		ret = __pci_reset_function_locked(pdev);
		pci_dev_unlock(pdev);
	}
	if (bridge)
		pci_dev_unlock(bridge);
	return ret;
}
