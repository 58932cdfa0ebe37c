# SPDX-License-Identifier: GPL-2.0
# `make` builds every module against KDIR (default: the test kernel prepared by
# `cargo xtask kernel`); `make clean` removes the build output. `cargo xtask
# build-modules` is the same build. The bindings step is a plain sh script
# (common/bindings/generate.sh), so a build with KDIR given needs no cargo.
#
#   make SHIPPED_ONLY=1   only the modules we ship (no sample, no test modules)
#   make WERROR=n         the kernel's own warning settings instead of warnings as errors
#   make install          `cargo xtask install`: modules_install into updates/, signing as
#                         the kernel's config asks, depmod, a manifest (INSTALL_MOD_PATH=D
#                         or DESTDIR=D installs under D instead of /)
#   make uninstall        `cargo xtask uninstall`: removes what the manifest lists
# DKMS builds with `make KDIR=... SHIPPED_ONLY=1 WERROR=n` (see dkms.conf).

KDIR ?= $(shell cargo xtask kdir 2>/dev/null)
KRUSTC ?= /usr/bin/rustc
WERROR ?= y
INSTALL_MOD_PATH ?= $(DESTDIR)
MAKEFLAGS += --no-print-directory

ifeq ($(KDIR),)
$(error no KDIR: run `cargo xtask kernel` first, or pass KDIR=/path/to/a/rust-enabled/kernel/build)
endif

all: modules

bindings:
	sh $(CURDIR)/common/bindings/generate.sh $(KDIR) $(CURDIR)/common/bindings/vfio_pci_common.h \
		$(CURDIR)/common/bindings/generated/vfio_pci_bindings.rs

modules: bindings
	$(MAKE) -C $(KDIR) M=$(CURDIR) RUSTC=$(KRUSTC) HOSTRUSTC=$(KRUSTC) \
		$(if $(filter y,$(WERROR)),CONFIG_WERROR=y) modules

install:
	cargo xtask install --kdir $(KDIR) $(if $(INSTALL_MOD_PATH),--destdir $(INSTALL_MOD_PATH))

uninstall:
	cargo xtask uninstall --kdir $(KDIR) $(if $(INSTALL_MOD_PATH),--destdir $(INSTALL_MOD_PATH))

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	rm -rf common/bindings/generated

.PHONY: all bindings modules install uninstall clean
