// SPDX-License-Identifier: GPL-2.0
/*
 * The state mutex of state_mutex.rs: one lockdep class for every device's, and the
 * nest-lock form used under a dev_set lock.
 */
#include <linux/mutex.h>
#include <linux/vfio.h>

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
