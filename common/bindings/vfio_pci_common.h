/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel C API our modules use beyond what the 6.12 `kernel` crate binds.
 * `cargo xtask build-modules` feeds this header to the kernel's own saved bindgen
 * command with an allowlist (see Documentation/architecture.md, "Bindings");
 * types the kernel crate already has resolve to `kernel::bindings`.
 */
#include <linux/pci.h>
#include <linux/vfio.h>
#include <linux/eventfd.h>
#include <linux/mod_devicetable.h>
/* struct vfio_device embeds a struct cdev, which the kernel crate only has as opaque. */
#include <linux/cdev.h>
/* The mdev core, for variants that register a function as an mdev parent (SDK only). */
#include <linux/mdev.h>
/* Firmware device properties (the memory description of NVLink-attached GPUs), and the
 * software nodes the test fixture attaches them with. */
#include <linux/property.h>
