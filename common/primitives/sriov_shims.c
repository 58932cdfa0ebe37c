// SPDX-License-Identifier: GPL-2.0
/*
 * SR-IOV (features/sriov.rs): the list of PFs that enabled SR-IOV through us, VF capture
 * through a bus notifier, and VF token generation.
 */
#include <linux/pci.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/slab.h>
#include <linux/uuid.h>

/*
 * SR-IOV. The PFs that enabled SR-IOV through one of our drivers (upstream's sriov_pfs list):
 * a VF registering later finds its PF's device here. The PF removes itself (after disabling
 * its VFs, which unbinds them) before it goes, so a VF's PF outlives it.
 */
static DEFINE_MUTEX(vpc_sriov_lock);
static LIST_HEAD(vpc_sriov_pfs);

struct vpc_sriov_pf {
	struct list_head node;
	struct pci_dev *pdev;
	void *owner;
};

int vfio_pci_common_sriov_pf_add(struct pci_dev *pdev, void *owner);
int vfio_pci_common_sriov_pf_add(struct pci_dev *pdev, void *owner)
{
	struct vpc_sriov_pf *pf, *cur;

	pf = kzalloc(sizeof(*pf), GFP_KERNEL);
	if (!pf)
		return -ENOMEM;
	pf->pdev = pdev;
	pf->owner = owner;
	mutex_lock(&vpc_sriov_lock);
	list_for_each_entry(cur, &vpc_sriov_pfs, node) {
		if (cur->pdev == pdev) {
			mutex_unlock(&vpc_sriov_lock);
			kfree(pf);
			return -EINVAL;
		}
	}
	list_add_tail(&pf->node, &vpc_sriov_pfs);
	mutex_unlock(&vpc_sriov_lock);
	return 0;
}

void vfio_pci_common_sriov_pf_del(struct pci_dev *pdev);
void vfio_pci_common_sriov_pf_del(struct pci_dev *pdev)
{
	struct vpc_sriov_pf *cur, *tmp;

	mutex_lock(&vpc_sriov_lock);
	list_for_each_entry_safe(cur, tmp, &vpc_sriov_pfs, node) {
		if (cur->pdev == pdev) {
			list_del(&cur->node);
			kfree(cur);
		}
	}
	mutex_unlock(&vpc_sriov_lock);
}

/* The owner registered for @vf's PF, or NULL. */
void *vfio_pci_common_sriov_pf_of(struct pci_dev *vf);
void *vfio_pci_common_sriov_pf_of(struct pci_dev *vf)
{
	struct pci_dev *physfn = pci_physfn(vf);
	struct vpc_sriov_pf *cur;
	void *owner = NULL;

	mutex_lock(&vpc_sriov_lock);
	list_for_each_entry(cur, &vpc_sriov_pfs, node) {
		if (cur->pdev == physfn) {
			owner = cur->owner;
			break;
		}
	}
	mutex_unlock(&vpc_sriov_lock);
	return owner;
}

/*
 * VF capture: a bus notifier per PF we drive sets driver_override of each new VF of that PF
 * to the PF's driver name, so VFs come up on our driver and no host driver binds them.
 */
struct vpc_vf_capture {
	struct notifier_block nb;
	struct pci_dev *pf;
	const char *name;
};

static int vpc_vf_notify(struct notifier_block *nb, unsigned long action, void *data)
{
	struct vpc_vf_capture *c = container_of(nb, struct vpc_vf_capture, nb);
	struct pci_dev *pdev = to_pci_dev(data);

	if (!pdev->is_virtfn || pci_physfn(pdev) != c->pf)
		return 0;
	if (action == BUS_NOTIFY_ADD_DEVICE) {
		pci_info(c->pf, "Captured SR-IOV VF %s driver_override\n", pci_name(pdev));
		WARN_ON(device_set_driver_override(&pdev->dev, c->name));
	} else if (action == BUS_NOTIFY_BOUND_DRIVER) {
		struct pci_driver *drv = pci_dev_driver(pdev);
		struct pci_driver *pf_drv = pci_dev_driver(c->pf);

		if (drv && drv != pf_drv)
			pci_warn(c->pf, "VF %s bound to driver %s while PF bound to driver %s\n",
				 pci_name(pdev), drv->name, pf_drv ? pf_drv->name : "(none)");
	}
	return 0;
}

void *vfio_pci_common_vf_capture_start(struct pci_dev *pf, const char *name);
void *vfio_pci_common_vf_capture_start(struct pci_dev *pf, const char *name)
{
	struct vpc_vf_capture *c = kzalloc(sizeof(*c), GFP_KERNEL);
	int ret;

	if (!c)
		return ERR_PTR(-ENOMEM);
	c->pf = pf;
	c->name = name;
	c->nb.notifier_call = vpc_vf_notify;
	ret = bus_register_notifier(&pci_bus_type, &c->nb);
	if (ret) {
		kfree(c);
		return ERR_PTR(ret);
	}
	return c;
}

void vfio_pci_common_vf_capture_stop(void *capture);
void vfio_pci_common_vf_capture_stop(void *capture)
{
	struct vpc_vf_capture *c = capture;

	if (IS_ERR_OR_NULL(c))
		return;
	bus_unregister_notifier(&pci_bus_type, &c->nb);
	kfree(c);
}

void vfio_pci_common_uuid_gen(u8 *out);
void vfio_pci_common_uuid_gen(u8 *out)
{
	uuid_t u;

	uuid_gen(&u);
	memcpy(out, u.b, sizeof(u.b));
}
