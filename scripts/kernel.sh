#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fetch the pinned Linux source, apply Ferrite's overlay (rust/ and patches/),
# configure from the fragments in kernel-config/ and build.
#
# usage: kernel.sh [main|debug|arm64-4k|arm64-16k] [--config-only]
#   main:      the test kernel (clang, Rust, DRM, Ferrite's hooks), x86-64
#   debug:     the same plus KASAN, lockdep, DMA-API debug, kmemleak, UBSAN
#   arm64-4k:  the main kernel's options for arm64 (QEMU virt), 4 KiB pages
#   arm64-16k: the same with 16 KiB pages
. "$(dirname "$0")/lib.sh"

FLAVOUR=${1:-main}
CONFIG_ONLY=${2:-}
case $FLAVOUR in
main) FRAGMENTS="common x86 ferrite" ;;
debug) FRAGMENTS="common x86 ferrite debug" ;;
arm64-4k | arm64-16k) FRAGMENTS="common arm64 ferrite $FLAVOUR" ;;
*) die "unknown kernel flavour $FLAVOUR (main, debug, arm64-4k or arm64-16k)" ;;
esac
PRISTINE=$KBUILD/linux-$LINUX_VERSION-pristine
SRC=$KBUILD/linux-$LINUX_VERSION
OUT=$KBUILD/build-$FLAVOUR
# The arm64 kernels are cross-built by the same clang/lld and rustc.
KMAKE="make -C $SRC O=$OUT $(kmake_arch "$FLAVOUR") LLVM=-19 -j$(nproc)"
IMAGE=$(kernel_image "$FLAVOUR")
# The main kernel compiles its Rust (the kernel crate with rust/'s
# abstractions) with clippy, every warning an error (-Dwarnings, as the
# kernel's own CONFIG_WERROR does it), and documents the crates with
# rustdoc under the same flags. The debug and arm64 kernels build the same
# code (clippy's and rustdoc's verdicts do not depend on the architecture
# of a build that compiles).
case $FLAVOUR in
main) RUSTCHECK="CLIPPY=1 KRUSTFLAGS=-Dwarnings" ;;
*) RUSTCHECK= ;;
esac

fetch_source() {
	[ -f "$PRISTINE/Makefile" ] && return 0
	stage "kernel: fetching $LINUX_SOURCE_PKG=$LINUX_SOURCE_VERSION"
	local dl=$KBUILD/dl
	rm -rf "$dl"; mkdir -p "$dl"
	in_rootfs /bin/sh -c "cd $dl && apt-get download -q '$LINUX_SOURCE_PKG=$LINUX_SOURCE_VERSION'" \
		>"$dl/download.log" 2>&1 ||
		die "pinned package $LINUX_SOURCE_PKG version $LINUX_SOURCE_VERSION is not in the archive" \
			"(see $dl/download.log); update LINUX_SOURCE_VERSION and LINUX_SOURCE_SHA256 in scripts/lib.sh"
	local deb
	deb=$(ls "$dl"/*.deb)
	local sum
	sum=$(sha256sum "$deb" | cut -d' ' -f1)
	[ "$sum" = "$LINUX_SOURCE_SHA256" ] ||
		die "checksum mismatch for $deb: got $sum, pinned $LINUX_SOURCE_SHA256"
	stage "kernel: unpacking $(basename "$deb") (sha256 verified)"
	dpkg-deb -x "$deb" "$dl/x"
	rm -rf "$PRISTINE.tmp"; mkdir -p "$PRISTINE.tmp"
	tar -C "$PRISTINE.tmp" --strip-components=1 -xf "$dl"/x/usr/src/linux-source-*.tar.*
	mv "$PRISTINE.tmp" "$PRISTINE"
	rm -rf "$dl"
}

# Directories of the repo copied over the kernel tree as they are (those
# that exist).
OVERLAY_DIRS=$(cd "$FERRITE_REPO" && for d in rust include; do [ -d "$d" ] && echo "$d"; done)

# Every file the overlay writes, relative to the kernel tree.
overlay_files() {
	(cd "$FERRITE_REPO" && find $OVERLAY_DIRS -type f | sort)
	echo drivers/gpu/drm/ferrite/Kconfig
	for p in "$FERRITE_REPO"/patches/*.patch; do
		[ -e "$p" ] && sed -n 's|^+++ b/\([^[:space:]]*\).*|\1|p' "$p"
	done
	return 0
}

# Build the overlaid tree in a staging copy (hard links to the pristine
# tree; patch(1) and cp --remove-destination break links, never write
# through them), then copy into the live tree only files whose content
# changed, so that make rebuilds only what the change touches.
apply_overlay() {
	local stagedir=$KBUILD/staging
	rm -rf "$stagedir"
	cp -al "$PRISTINE" "$stagedir"
	for p in "$FERRITE_REPO"/patches/*.patch; do
		[ -e "$p" ] || continue
		patch -d "$stagedir" -p1 -s --no-backup-if-mismatch <"$p" ||
			die "patch $(basename "$p") does not apply to $LINUX_VERSION"
	done
	(cd "$FERRITE_REPO" && find $OVERLAY_DIRS -type f) | while read -r f; do
		mkdir -p "$stagedir/$(dirname "$f")"
		cp --remove-destination "$FERRITE_REPO/$f" "$stagedir/$f"
	done
	mkdir -p "$stagedir/drivers/gpu/drm/ferrite"
	cp --remove-destination "$FERRITE_REPO/Kconfig" "$stagedir/drivers/gpu/drm/ferrite/Kconfig"

	if [ ! -d "$SRC" ]; then
		cp -al "$PRISTINE" "$SRC"
	fi
	local manifest=$KBUILD/overlay.manifest
	{ [ -f "$manifest" ] && cat "$manifest"; overlay_files; } | sort -u | while read -r f; do
		if [ -e "$stagedir/$f" ]; then
			if ! cmp -s "$stagedir/$f" "$SRC/$f"; then
				mkdir -p "$SRC/$(dirname "$f")"
				cp --remove-destination "$stagedir/$f" "$SRC/$f"
				echo "  overlay: $f"
			fi
		elif [ -e "$SRC/$f" ]; then
			rm -f "$SRC/$f"
			echo "  overlay: removed $f"
		fi
	done
	overlay_files | sort -u >"$manifest"
	rm -rf "$stagedir"
}

# The symbols that have a prompt (a user can switch them), from the
# tree's Kconfig files: the reverse check below lists only those, so the
# list stays small enough to read.
prompted_symbols() {
	(cd "$SRC" && find . -name 'Kconfig*' -not -path './Documentation/*' -print0 |
		xargs -0 awk '
		/^[ \t]*(menu)?config[ \t]+[A-Za-z0-9_]+/ { sym = $2; next }
		/^[ \t]*(bool|tristate|string|int|hex|prompt)[ \t]+"/ { if (sym != "") print "CONFIG_" sym; next }
		/^[ \t]*(choice|endchoice|menu|endmenu|if|endif|source|comment)([ \t]|$)/ { sym = "" }') |
		sort -u
}

# What the base (allnoconfig) and the selects of the fragments enable
# beyond the fragments themselves: the switchable options that are on
# without a fragment naming them.
implied_options() {
	local frags=("$@")
	comm -12 <(sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=[ym]$/\1/p' "$OUT/.config" | sort) \
		<(prompted_symbols) |
		comm -23 - <(sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=.*/\1/p' "${frags[@]}" | sort -u)
}

# The guest kernels start from allnoconfig: every option the fragments do
# not ask for is off, except those without a prompt (what the
# architecture always has) and what a fragment's options select.
# KCONFIG_ALLCONFIG applies the fragments while allnoconfig runs, so
# options that only become visible through them are off too (a merge
# after allnoconfig would give those their defaults: IPv6, wireless...).
configure() {
	local frags=()
	for f in $FRAGMENTS; do frags+=("$FERRITE_REPO/kernel-config/$f.config"); done
	mkdir -p "$OUT"
	cat "${frags[@]}" >"$OUT/fragments.config"
	in_rootfs $KMAKE -s KCONFIG_ALLCONFIG="$OUT/fragments.config" allnoconfig >"$OUT/config.log" 2>&1 ||
		{ cat "$OUT/config.log" >&2; die "make allnoconfig with kernel-config/ failed"; }
	# Every option in the fragments must have survived.
	local dropped=()
	local line sym val
	while read -r line; do
		case $line in
		CONFIG_*=*)
			sym=${line%%=*}; val=${line#*=}
			grep -qxF "$sym=$val" "$OUT/.config" || dropped+=("$line (now: $(grep -E "^$sym=|^# $sym is not set" "$OUT/.config" || echo unset))")
			;;
		"# CONFIG_"*" is not set")
			sym=${line#\# }; sym=${sym%% *}
			grep -qE "^$sym=" "$OUT/.config" && dropped+=("$line (now: $(grep -E "^$sym=" "$OUT/.config"))")
			;;
		esac
	done < <(cat "${frags[@]}")
	if [ ${#dropped[@]} -gt 0 ]; then
		printf '  dropped by kconfig: %s\n' "${dropped[@]}" >&2
		die "${#dropped[@]} option(s) from kernel-config/ did not survive kconfig"
	fi
	# The reverse: what is on without a fragment asking for it must be
	# what kernel-config/$FLAVOUR.implied says, so that nothing creeps in
	# (or out) unreviewed. UPDATE_IMPLIED=1 rewrites the list.
	local list=$FERRITE_REPO/kernel-config/$FLAVOUR.implied
	implied_options "${frags[@]}" >"$OUT/implied.now"
	if [ "${UPDATE_IMPLIED:-0}" = 1 ]; then
		{
			echo "# Switchable options that are on in the $FLAVOUR kernel although no"
			echo "# fragment of kernel-config/ names them: allnoconfig leaves them on"
			echo "# (no prompt without EXPERT) or a fragment's option selects them."
			echo "# Generated by: UPDATE_IMPLIED=1 scripts/kernel.sh $FLAVOUR --config-only"
			cat "$OUT/implied.now"
		} >"$list"
		stage "kernel($FLAVOUR): wrote $list ($(wc -l <"$OUT/implied.now") options)"
	fi
	local diff
	diff=$(diff <(grep -v '^#' "$list" 2>/dev/null) "$OUT/implied.now" | sed -n 's/^[<>] /&/p') || true
	if [ -n "$diff" ]; then
		echo "$diff" | sed -e 's/^< /  no longer on: /' -e 's/^> /  now on, unlisted: /' >&2
		die "the options on without a fragment differ from kernel-config/$FLAVOUR.implied" \
			"(review, then UPDATE_IMPLIED=1 scripts/kernel.sh $FLAVOUR --config-only)"
	fi
}

fetch_source

# What this build depends on: source version, fragments, overlay.
inputs=$( {
	echo "$LINUX_VERSION $FLAVOUR $FRAGMENTS $RUSTCHECK"
	for f in $FRAGMENTS; do cat "$FERRITE_REPO/kernel-config/$f.config"; done
	cat "$FERRITE_REPO/kernel-config/$FLAVOUR.implied" 2>/dev/null || true
	cat "$FERRITE_REPO/Kconfig"
	(cd "$FERRITE_REPO" && find $OVERLAY_DIRS patches -type f 2>/dev/null | sort | xargs -r sha256sum)
} | sha256sum | cut -c1-16)
if [ -z "$CONFIG_ONLY" ] && stamp_ok "kernel-$FLAVOUR" "$inputs" && [ -f "$IMAGE" ]; then
	stage "kernel($FLAVOUR): up to date"
	exit 0
fi

stage "kernel($FLAVOUR): applying overlay (rust/, patches/, Kconfig hook)"
apply_overlay
in_rootfs $KMAKE -s rustavailable >/dev/null 2>&1 ||
	{ in_rootfs $KMAKE rustavailable || true; die "make rustavailable failed"; }
stage "kernel($FLAVOUR): configuring from kernel-config/{$(echo $FRAGMENTS | tr ' ' ,)}"
configure
if [ "$CONFIG_ONLY" = --config-only ]; then
	stage "kernel($FLAVOUR): configured ($OUT/.config); not building"
	exit 0
fi
stage "kernel($FLAVOUR): building (make LLVM=-19 -j$(nproc), log in $OUT/build.log)"
if ! in_rootfs $KMAKE $RUSTCHECK "$(basename "$IMAGE")" modules >"$OUT/build.log" 2>&1; then
	grep -E 'error|Error' "$OUT/build.log" | head -20 >&2
	die "kernel build failed, see $OUT/build.log"
fi
if [ -n "$RUSTCHECK" ]; then
	# rustdoc of the crates (core, macros, kernel...), warnings failing:
	# broken intra-doc links and the like. Only when the kernel is rebuilt,
	# which is when its input hash changes.
	stage "kernel($FLAVOUR): make rustdoc (warnings fail), log in $OUT/rustdoc.log"
	if ! in_rootfs $KMAKE $RUSTCHECK rustdoc >"$OUT/rustdoc.log" 2>&1 ||
		grep -qE '^(warning|error)(\[|:)' "$OUT/rustdoc.log"; then
		grep -E -A5 '^(warning|error)(\[|:)' "$OUT/rustdoc.log" | head -30 >&2
		die "make rustdoc failed or warned, see $OUT/rustdoc.log"
	fi
fi
in_rootfs $KMAKE -s modules_install INSTALL_MOD_PATH="$OUT/mods" INSTALL_MOD_STRIP=1 >/dev/null
rm -f "$OUT/mods/lib/modules/"*/build "$OUT/mods/lib/modules/"*/source
in_rootfs $KMAKE -s headers_install INSTALL_HDR_PATH="$OUT/hdr" >/dev/null
stamp_set "kernel-$FLAVOUR" "$inputs"
stage "kernel($FLAVOUR): built $(in_rootfs $KMAKE -s kernelrelease)"
