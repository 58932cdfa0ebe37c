# SPDX-License-Identifier: GPL-2.0
# `make` builds every module against KDIR (default: the test kernel prepared by
# `cargo xtask kernel`); `make clean` removes the build output. `cargo xtask
# build-modules` is the same build plus the bindings generation it needs first.

KDIR ?= $(shell cargo xtask kdir 2>/dev/null)
KRUSTC ?= /usr/bin/rustc
MAKEFLAGS += --no-print-directory

ifeq ($(KDIR),)
$(error no KDIR: run `cargo xtask kernel` first, or pass KDIR=/path/to/a/rust-enabled/kernel/build)
endif

all: modules

bindings:
	cargo xtask bindings --kdir $(KDIR)

modules: bindings
	$(MAKE) -C $(KDIR) M=$(CURDIR) RUSTC=$(KRUSTC) CONFIG_WERROR=y modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	rm -rf common/bindings/generated

.PHONY: all bindings modules clean
