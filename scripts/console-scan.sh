#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# usage: console-scan.sh CONSOLE_LOG
# Exit 1 and name the first kernel report (oops, BUG, WARNING, KASAN, UBSAN,
# lockdep, kmemleak, DMA-API debug, panic) found in a guest console log.
# The console carries the whole kernel log (loglevel=7): the patterns name
# reports, not the boot banners of the debug features (e.g. "DMA-API:
# preallocated ...", "kmemleak: Kernel memory leak detector initialized").
pat='Oops|BUG:|WARNING:|KASAN:|UBSAN:|possible circular locking|possible recursive locking|'
pat+='inconsistent lock state|suspicious RCU usage|lockdep is turned off|kmemleak: [0-9]+ new suspected|'
pat+='unreferenced object|DMA-API: .*(device driver|driver tries|driver frees)|Kernel panic|'
pat+='general protection fault|Call Trace:|rust_panic|panicked at|soft lockup|blocked for more than'
pat+='|Object corrupt|Redzone overwritten|Poison overwritten|Padding overwritten'
# ferrite_robust@page-fault-injection makes page allocations fail on
# purpose, and the kernel reports each failure with a stack dump
# (warn_alloc): from that subtest's start to the next IGT marker, such a
# report, up to the end of its stack, is expected and skipped. Line numbers
# stay those of the log.
first=$(awk -v pat="$pat" '
	/\[IGT\] / { window = ($0 ~ /starting subtest page-fault-injection/) }
	window && /page allocation failure: order:/ { skip = 1; next }
	skip { if (/<\/TASK>/) skip = 0; next }
	$0 ~ pat { print NR ":" $0; exit }
' "$1" 2>/dev/null)
if [ -n "$first" ]; then
	echo "$first"
	exit 1
fi
exit 0
