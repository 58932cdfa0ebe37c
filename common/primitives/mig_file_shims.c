// SPDX-License-Identifier: GPL-2.0
/*
 * The migration data fd: an anonymous stream file (no positions: pread/pwrite fail with
 * -ESPIPE, read/write get no offset) whose private_data is the Rust DataFile reference the
 * file owns. Its operations are the vfio_pci_common_mig_file_* functions of
 * features/migration.rs; the file holds a reference on this module (.owner), so the code
 * outlives every fd.
 */
#include <linux/anon_inodes.h>
#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/module.h>

ssize_t vfio_pci_common_mig_file_read(void *data, unsigned long buf, size_t len);
ssize_t vfio_pci_common_mig_file_write(void *data, unsigned long buf, size_t len);
long vfio_pci_common_mig_file_ioctl(void *data, unsigned int cmd, unsigned long arg);
void vfio_pci_common_mig_file_release(void *data);
struct file *vfio_pci_common_mig_file_new(void *data, bool resuming);

static ssize_t mig_read(struct file *filp, char __user *buf, size_t len, loff_t *pos)
{
	if (pos)
		return -ESPIPE;
	return vfio_pci_common_mig_file_read(filp->private_data, (unsigned long)buf, len);
}

static ssize_t mig_write(struct file *filp, const char __user *buf, size_t len, loff_t *pos)
{
	if (pos)
		return -ESPIPE;
	return vfio_pci_common_mig_file_write(filp->private_data, (unsigned long)buf, len);
}

static long mig_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	return vfio_pci_common_mig_file_ioctl(filp->private_data, cmd, arg);
}

static int mig_release(struct inode *inode, struct file *filp)
{
	vfio_pci_common_mig_file_release(filp->private_data);
	return 0;
}

static const struct file_operations saving_fops = {
	.owner = THIS_MODULE,
	.read = mig_read,
	.unlocked_ioctl = mig_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.release = mig_release,
};

static const struct file_operations resuming_fops = {
	.owner = THIS_MODULE,
	.write = mig_write,
	.release = mig_release,
};

/* A saving (read-only) or resuming (write-only) data file, or an ERR_PTR. */
struct file *vfio_pci_common_mig_file_new(void *data, bool resuming)
{
	struct file *filp;

	filp = anon_inode_getfile("vfio_pci_common_mig", resuming ? &resuming_fops : &saving_fops,
				  data, resuming ? O_WRONLY : O_RDONLY);
	if (!IS_ERR(filp))
		stream_open(filp->f_inode, filp);
	return filp;
}
