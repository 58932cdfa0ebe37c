#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Generates the extra bindings the common module needs for one kernel, with that kernel's own
# bindgen invocation: the `savedcmd_` line of KDIR/rust/bindings/.bindings_generated.rs.cmd,
# rewritten to take HEADER instead of the kernel's bindings_helper.h, write OUT, drop the
# dependency file, keep only the declarations of ALLOWLIST (everything else they mention is
# already in `kernel::bindings`, so the types shared with the kernel crate are the kernel's
# own), and run the kernel's post-processing on OUT. OUT keeps its mtime when its contents do
# not change, so Kbuild does not rebuild.
#
# Plain POSIX sh and awk, so `make` and DKMS need neither cargo nor xtask; `cargo xtask
# bindings` and `build-modules` run this same script.
#
# usage: generate.sh [--print] KDIR HEADER OUT
#   --print: print the rewritten command instead of running it.

set -eu

print=
if [ "${1-}" = "--print" ]; then
	print=1
	shift
fi
if [ $# -ne 3 ]; then
	echo "usage: $0 [--print] KDIR HEADER OUT" >&2
	exit 2
fi
kdir=$1
header=$2
out=$3

# The kernel headers we take declarations from. x86's asm/pci.h gives struct pci_sysdata,
# which the test fixture that creates a software PCI root bus (tests/fixtures/fakepci) hands
# to the PCI core.
allowlist='.*/include/(uapi/)?linux/(pci|pci_regs|pci_ids|vfio|eventfd|iova_bitmap|msi_api|poll|cdev|mdev|property)\.h|.*/arch/x86/include/asm/pci\.h'

cmdfile=$kdir/rust/bindings/.bindings_generated.rs.cmd
if [ ! -r "$cmdfile" ]; then
	echo "$0: $cmdfile is missing: $kdir is not a prepared Rust-enabled kernel build (CONFIG_RUST=y)" >&2
	exit 1
fi

tmp=$out.tmp
# The saved line is `bindgen <kernel header> <flags> -o <out> -- <clang flags> ; sed ...`.
script=$(awk -v header="$header" -v out="$tmp" -v allow="$allowlist" '
function fail(msg) { print "generate.sh: " msg > "/dev/stderr"; bad = 1; exit 1 }
# every occurrence of the literal string s in t replaced by r
function replace_all(t, s, r,    i, res) {
	res = ""
	while ((i = index(t, s)) > 0) {
		res = res substr(t, 1, i - 1) r
		t = substr(t, i + length(s))
	}
	return res t
}
NR == 1 {
	i = index($0, ":= ")
	if (!i) fail("no `:= ` in the saved command")
	cmd = substr($0, i + 3)
	post = ""
	j = index(cmd, " ; ")
	if (j) { post = substr(cmd, j + 3); cmd = substr(cmd, 1, j - 1) }
	k = index(cmd, " -- ")
	if (!k) fail("no ` -- ` before the clang flags")
	n = split(substr(cmd, 1, k - 1), w, " ")
	clang = substr(cmd, k + 4)
	# w[1] is bindgen, w[2] the kernel header.
	if (n < 2 || w[2] !~ /bindings_helper\.h$/)
		fail("unexpected bindgen command: " substr(cmd, 1, 200))
	w[2] = header
	for (o = 1; o <= n && w[o] != "-o"; o++) ;
	if (o > n) fail("no `-o` in the bindgen command")
	if (o == n) fail("`-o` without a file in the bindgen command")
	kout = w[o + 1]
	w[o + 1] = out
	s = w[1]
	for (x = 2; x <= n; x++) s = s " " w[x]
	s = s " --allowlist-file '\''" allow "'\'' --no-recursive-allowlist"
	s = s " --raw-line '\''pub use kernel::bindings::*;'\'' --raw-line '\''use kernel::ffi;'\''"
	s = s " --"
	m = split(clang, c, " ")
	for (x = 1; x <= m; x++) if (c[x] !~ /^-Wp,-MMD/) s = s " " c[x]
	if (post ~ /[^ \t]/) s = s " && " replace_all(post, kout, out)
	print s
	exit 0
}
END { if (NR == 0 && !bad) fail("empty command file") }
' "$cmdfile")

if [ -n "$print" ]; then
	printf '%s\n' "$script"
	exit 0
fi
mkdir -p "$(dirname "$out")"
if ! (cd "$kdir" && sh -c "$script"); then
	rm -f "$tmp"
	echo "$0: bindgen failed; the command was:" >&2
	printf '%s\n' "$script" >&2
	exit 1
fi
if cmp -s "$tmp" "$out"; then
	rm -f "$tmp"
else
	mv -f "$tmp" "$out"
fi
