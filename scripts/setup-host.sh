#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Host packages, from the host's own suite (Debian 12): debootstrap to make
# the trixie rootfs, libclang and libdrm headers for the userspace crate's
# bindgen step. Nothing from trixie or newer is installed on the host.
. "$(dirname "$0")/lib.sh"

HOST_PKGS="debootstrap libclang-dev libdrm-dev"
missing=()
for p in $HOST_PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	stage "host: apt-get install ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi
command -v cargo >/dev/null || die "cargo is missing: this project needs the machine's Rust toolchain"
command -v python3 >/dev/null || die "python3 is missing"
