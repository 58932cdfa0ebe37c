// SPDX-License-Identifier: GPL-2.0
/*
 * Runtime power management of bound devices (idle D3) and the dev_pm_ops every variant's
 * pci_driver uses.
 */
#include <linux/pci.h>
#include <linux/pm_runtime.h>

/*
 * Runtime PM (idle D3). Without CONFIG_PM every call is a no-op, as for upstream. The device
 * holds a usage count while open; when it is closed (and disable_idle_d3 is off) the PCI core
 * may runtime-suspend it to D3hot, saving and restoring config space itself. Closed devices are
 * always in D0 with no interrupt set up, so our callbacks have nothing to do; they exist
 * because the PCI core refuses runtime suspend to a driver without PM ops.
 */
int vfio_pci_common_pm_get(struct pci_dev *pdev);
int vfio_pci_common_pm_get(struct pci_dev *pdev)
{
	return pm_runtime_resume_and_get(&pdev->dev);
}

void vfio_pci_common_pm_put(struct pci_dev *pdev);
void vfio_pci_common_pm_put(struct pci_dev *pdev)
{
	pm_runtime_put(&pdev->dev);
}

void vfio_pci_common_pm_probe(struct pci_dev *pdev, bool idle_d3);
void vfio_pci_common_pm_probe(struct pci_dev *pdev, bool idle_d3)
{
	pm_runtime_allow(&pdev->dev);
	if (idle_d3)
		pm_runtime_put(&pdev->dev);
}

void vfio_pci_common_pm_remove(struct pci_dev *pdev, bool idle_d3);
void vfio_pci_common_pm_remove(struct pci_dev *pdev, bool idle_d3)
{
	if (idle_d3)
		pm_runtime_get_noresume(&pdev->dev);
	pm_runtime_forbid(&pdev->dev);
}

#ifdef CONFIG_PM
static int vpc_runtime_suspend(struct device *dev)
{
	return 0;
}

static int vpc_runtime_resume(struct device *dev)
{
	return 0;
}
#endif

static const struct dev_pm_ops vpc_pm_ops = {
	SET_RUNTIME_PM_OPS(vpc_runtime_suspend, vpc_runtime_resume, NULL)
};

/* The dev_pm_ops every variant's pci_driver uses (set by the SDK). */
const struct dev_pm_ops *vfio_pci_common_pm_ops(void);
const struct dev_pm_ops *vfio_pci_common_pm_ops(void)
{
	return &vpc_pm_ops;
}
EXPORT_SYMBOL_GPL(vfio_pci_common_pm_ops);
