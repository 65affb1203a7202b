# SPDX-License-Identifier: GPL-2.0
#
# Ferrite. The two commands of the README:
#   make run    build what is missing, boot the guest with the Ferrite GPU,
#               load the driver and run the demo
#   make test   run every test (host, KUnit, guest) and print the summary
#
# Kbuild reads ./Kbuild for the module; this Makefile is for people.
# FERRITE_KERNEL=debug selects the KASAN/lockdep/DMA-API-debug kernel.

FERRITE_KERNEL ?= main
export FERRITE_KERNEL

.PHONY: run test bench build kernel module series clean
run:
	@scripts/run.sh $(FERRITE_KERNEL)

test:
	@scripts/test.sh $(FERRITE_KERNEL)

# Benchmarks print ratios measured in one run (not part of make test).
bench:
	@scripts/bench.sh

build:
	@scripts/build.sh $(FERRITE_KERNEL)

kernel:
	@scripts/kernel.sh $(FERRITE_KERNEL)

module:
	@scripts/module.sh $(FERRITE_KERNEL)

# The kernel changes (patches/ and the rust/ overlay) as a git format-patch
# series in $(FERRITE_CACHE)/series; make test also applies and checks it.
series:
	@scripts/series.sh

# Removes the repo's build products; the cache ($(FERRITE_CACHE)) stays.
clean:
	cargo clean
