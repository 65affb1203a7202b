#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Ferrite's kernel changes as a `git format-patch` series that a maintainer
# can apply with `git am`, and its test.
#
# usage: series.sh [--check]
#
# The series is patches/*.patch in order (each a commit message and its
# edits to upstream files), each with the new files that patches/new-files
# assigns to it added (those live in the overlay: rust/, include/, the
# repo's Kconfig). It is written to $FERRITE_CACHE/series/.
#
# --check then tests it, printing `PASS host: ...` / `FAIL host: ...` lines:
# it applies the series with `git am` onto a fresh branch of a git repo of
# the pristine tree, checks that the result is the tree the kernel build
# compiles ($KBUILD/linux-$LINUX_VERSION: it must be up to date, as make
# test's kernel stage leaves it), and runs the tree's checkpatch.pl
# --strict on every patch and with -f on the driver's files. Errors fail;
# a warning or check fails unless its type is listed in the README's
# table of checkpatch warnings.
. "$(dirname "$0")/lib.sh"

CHECK=${1:-}
PRISTINE=$KBUILD/linux-$LINUX_VERSION-pristine
SRC=$KBUILD/linux-$LINUX_VERSION
PGIT=$KBUILD/series-git
OUTDIR=$FERRITE_CACHE/series
LOGDIR=$FERRITE_CACHE/series-check
MANIFEST=$FERRITE_REPO/patches/new-files
IDENT="Ferrite developers"
EMAIL="ferrite@localhost"

# Commits made here are reproducible: one identity, fixed commit dates
# (author dates come from the patches).
export GIT_AUTHOR_NAME=$IDENT GIT_AUTHOR_EMAIL=$EMAIL
export GIT_COMMITTER_NAME=$IDENT GIT_COMMITTER_EMAIL=$EMAIL
export GIT_COMMITTER_DATE="@0 +0000"
g() { git -C "$PGIT" -c core.autocrlf=false -c advice.detachedHead=false "$@"; }

# A git repo of the pristine source, made once per source pin: its one
# commit is on the branch `pristine`, which nothing here moves.
make_pristine_repo() {
	if [ -d "$PGIT/.git" ] && stamp_ok series-git "$LINUX_SOURCE_SHA256"; then
		return 0
	fi
	[ -f "$PRISTINE/Makefile" ] || die "no pristine source in $PRISTINE (run scripts/kernel.sh first)"
	stage "series: making a git repo of the pristine $LINUX_VERSION source (once)"
	local t0 tmp=$PGIT.tmp
	t0=$(now)
	rm -rf "$PGIT" "$tmp"
	cp -a "$PRISTINE" "$tmp"
	git -C "$tmp" init -q -b pristine
	# No automatic gc: packing its 96k loose objects costs more than it saves.
	git -C "$tmp" config gc.auto 0
	git -C "$tmp" config maintenance.auto false
	# -f: the tarball holds files that the tree's .gitignore files match.
	git -C "$tmp" add -f -A .
	GIT_AUTHOR_DATE="@0 +0000" git -C "$tmp" commit -q -m "Linux $LINUX_VERSION"
	mv "$tmp" "$PGIT"
	stamp_set series-git "$LINUX_SOURCE_SHA256"
	stage "series: pristine repo made in $(( $(now) - t0 )) s"
}

# Back to a clean work tree on a new BRANCH at pristine (only the files
# the last branch changed are rewritten).
fresh_branch() {
	g am --abort >/dev/null 2>&1 || true
	g reset -q --hard
	g clean -q -fd
	g checkout -q -f -B "$1" pristine
}

# The overlay's files: kernel-tree path, then the repo path it comes from.
overlay_files() {
	(cd "$FERRITE_REPO" && find rust include -type f 2>/dev/null | sort | sed 's/.*/& &/')
	echo "drivers/gpu/drm/ferrite/Kconfig Kconfig"
}

# Check the manifest: every overlay file assigned to exactly one existing
# patch, nothing else, and no file that upstream already has (an edit of
# an upstream file belongs in a patch).
check_manifest() {
	local bad=0 n path src
	declare -A seen=()
	while read -r n path; do
		[ -n "$n" ] || continue
		case $n in \#*) continue ;; esac
		ls "$FERRITE_REPO"/patches/"$n"-*.patch >/dev/null 2>&1 ||
			{ echo "patches/new-files: no patch $n for $path" >&2; bad=1; }
		[ -z "${seen[$path]:-}" ] || { echo "patches/new-files: $path listed twice" >&2; bad=1; }
		seen[$path]=$n
	done <"$MANIFEST"
	while read -r path src; do
		[ -n "${seen[$path]:-}" ] || { echo "patches/new-files: $path (from $src) is in no patch" >&2; bad=1; }
		unset "seen[$path]"
		[ ! -e "$PRISTINE/$path" ] || { echo "$src: $path exists upstream; change it with a patch" >&2; bad=1; }
	done < <(overlay_files)
	for path in "${!seen[@]}"; do
		echo "patches/new-files: $path is not in the overlay" >&2; bad=1
	done
	[ $bad = 0 ] || die "patches/new-files does not match the overlay"
}

build_series() {
	check_manifest
	declare -A from=()
	local path src p n f
	while read -r path src; do from[$path]=$src; done < <(overlay_files)
	fresh_branch series-build
	for p in "$FERRITE_REPO"/patches/*.patch; do
		n=$(basename "$p"); n=${n%%-*}
		g am -q "$p" >"$LOGDIR/am-build.log" 2>&1 ||
			{ cat "$LOGDIR/am-build.log" >&2; die "patches/$(basename "$p") does not apply with git am"; }
		local added=0
		while read -r f; do
			mkdir -p "$PGIT/$(dirname "$f")"
			cp "$FERRITE_REPO/${from[$f]}" "$PGIT/$f"
			g add -f "$f"
			added=1
		done < <(awk -v n="$n" '$1 == n { print $2 }' "$MANIFEST")
		if [ $added = 1 ]; then
			GIT_AUTHOR_DATE=$(g log -1 --format=%aD) g commit -q --amend --no-edit
		fi
	done
	rm -rf "$OUTDIR"
	g format-patch -q --no-signature -o "$OUTDIR" pristine..series-build
	stage "series: $(ls "$OUTDIR" | wc -l) patches in $OUTDIR"
}

# checkpatch.pl --strict on FILE (extra options before it): the counts in
# its last line, and the types of its warnings and checks (--show-types).
checkpatch() {
	local log=$1; shift
	(cd "$PGIT" && perl scripts/checkpatch.pl --strict --show-types --color=never "$@") >"$log" 2>&1 || true
}

# The warning and check types the README explains (its checkpatch table).
explained_types() {
	sed -n '/^### checkpatch/,/^#/p' "$FERRITE_REPO/README.md" |
		sed -n 's/^| `\([A-Z_]*\)`.*/\1/p' | sort -u
}

# verdict NAME LOG: PASS if checkpatch's LOG has no error and only explained
# warnings and checks.
verdict() {
	local name=$1 log=$2 counts unexplained
	counts=$(grep -E '^total: [0-9]+ errors' "$log" | tail -1)
	if [ -z "$counts" ]; then
		echo "FAIL host: $name (checkpatch did not finish, see $log)"
		return
	fi
	unexplained=$(sed -n 's/^\(WARNING\|CHECK\):\([A-Z_]*\):.*/\2/p' "$log" | sort -u |
		comm -23 - <(explained_types) | tr '\n' ' ')
	echo "$(basename "$log" .log): $counts" >>"$LOGDIR/summary"
	if ! echo "$counts" | grep -q '^total: 0 errors'; then
		echo "FAIL host: $name ($counts, see $log)"
	elif [ -n "$unexplained" ]; then
		echo "FAIL host: $name (warnings not explained in the README: $unexplained; see $log)"
	else
		echo "PASS host: $name"
	fi
}

check_series() {
	local p f n=0 diffs=0
	fresh_branch series-test
	if g am -q "$OUTDIR"/*.patch >"$LOGDIR/am.log" 2>&1; then
		echo "PASS host: series: git am of $(ls "$OUTDIR" | wc -l) patches onto pristine $LINUX_VERSION"
	else
		echo "FAIL host: series: git am onto pristine $LINUX_VERSION (see $LOGDIR/am.log)"
		return
	fi
	# The series' result against the tree the kernel build compiles: the
	# files the series changes, the files the overlay writes, and every
	# file of that tree not hard-linked to the pristine one.
	[ -f "$KBUILD/overlay.manifest" ] || die "no $KBUILD/overlay.manifest: build the kernel first"
	{
		g diff --name-only --no-renames pristine HEAD
		cat "$KBUILD/overlay.manifest"
		(cd "$SRC" && find . -type f -links 1 -printf '%P\n')
	} | sort -u >"$LOGDIR/compared"
	while read -r f; do
		n=$((n + 1))
		if [ -e "$PGIT/$f" ] || [ -e "$SRC/$f" ]; then
			cmp -s "$PGIT/$f" "$SRC/$f" || { echo "differs: $f" >>"$LOGDIR/differences"; diffs=$((diffs + 1)); }
		fi
	done < <(: >"$LOGDIR/differences"; cat "$LOGDIR/compared")
	if [ $diffs = 0 ]; then
		echo "PASS host: series: the applied series is the kernel build's source tree"
	else
		echo "FAIL host: series: $diffs of $n files differ from the kernel build's source tree (see $LOGDIR/differences)"
	fi

	: >"$LOGDIR/summary"
	for p in "$OUTDIR"/*.patch; do
		checkpatch "$LOGDIR/$(basename "$p" .patch).log" "$p"
		verdict "checkpatch --strict $(basename "$p" .patch | cut -c1-4)" "$LOGDIR/$(basename "$p" .patch).log"
	done
	for f in "$FERRITE_REPO"/drivers/gpu/drm/ferrite/*; do
		[ -f "$f" ] || continue
		checkpatch "$LOGDIR/driver-$(basename "$f").log" -f "$f"
		verdict "checkpatch --strict -f drivers/gpu/drm/ferrite/$(basename "$f")" "$LOGDIR/driver-$(basename "$f").log"
	done
}

mkdir -p "$LOGDIR" "$KBUILD"
# One user of the repo at a time (make series while make test runs).
exec 9>"$KBUILD/series-git.lock"
flock 9
make_pristine_repo
stage "series: building from patches/ and the overlay (patches/new-files)"
build_series
if [ "$CHECK" = --check ]; then
	stage "series: git am onto pristine $LINUX_VERSION, compare, checkpatch --strict"
	check_series
fi
