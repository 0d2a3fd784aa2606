# suiro -- the two commands are `make run` and `make test` (see README.md).
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
# -Werror in CI (CI=true), plain warnings elsewhere.
ifeq ($(CI),true)
WERROR := -DSR_WERROR=ON
else
WERROR ?=
endif
CMAKE_ARGS ?=
# make install: where (PREFIX) and into which staging root (DESTDIR, empty: /)
PREFIX     ?= /usr/local
DESTDIR    ?=

.PHONY: all deps build build-asan run test test-asan bench soak fuzz clean install deb

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(WERROR) $(CMAKE_ARGS) >/dev/null
	@MAKEFLAGS=--no-print-directory cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@CC=clang cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSR_SANITIZE="address;undefined" \
	  -DSR_BUILD_BENCH=OFF -DSR_BUILD_FUZZ=ON $(WERROR) $(CMAKE_ARGS) >/dev/null
	@MAKEFLAGS=--no-print-directory cmake --build $(ASAN_BUILD) -j$(JOBS)

# Everything: the normal build's suites (all but label bench:
# test_cluster_bench, `make bench`'s), then the ASan/UBSan half (clang,
# Debug, invariant checks): the unit suites, the fuzz targets' corpus
# replay and the integration tests not labelled noasan. Budget: 15 minutes on 2 cores from
# a fresh clone, builds included (docs/testing.md). The fault suite tries
# every 7th fault point here (every 28th under ASan), from an offset that
# turns with the day and is printed (SR_FAULT_STRIDE, SR_FAULT_OFFSET
# replay it); `make soak` tries every point.
# The ASan/UBSan build compiles (niced, its output in build-asan.log) while
# the normal half runs: most of its tests wait more than they compute. Its
# log is printed when it fails; the sanitizer half starts once both are done.
FAULT_STRIDE      ?= 7
ASAN_FAULT_STRIDE ?= 28
# ctest's parallel tests (the Criterion suites run 2 jobs each inside); what
# may not run side by side is labelled in tests/CMakeLists.txt. The normal
# half 6 slots (at 4 its slots were full 91 % of the time with the cores
# about 70 % busy: two `cpu` suites took all four), the ASan half 4 (its
# cores are busy: more slots only slow each entry down). docs/testing.md.
TEST_JOBS         ?= 6
ASAN_TEST_JOBS    ?= 4
ASAN_LOG          := $(abspath $(ASAN_BUILD)).log
test: build
	@nice -n 10 $(MAKE) --no-print-directory build-asan >$(ASAN_LOG) 2>&1 & apid=$$!; \
	  (cd $(BUILD) && SR_FAULT_STRIDE=$${SR_FAULT_STRIDE:-$(FAULT_STRIDE)} ctest --output-on-failure -j$(TEST_JOBS) -LE bench); \
	  rc=$$?; wait $$apid; arc=$$?; \
	  if [ $$arc -ne 0 ]; then cat $(ASAN_LOG); echo "make test: the ASan/UBSan build failed ($(ASAN_LOG))" >&2; exit $$arc; fi; \
	  [ $$rc -eq 0 ] || exit $$rc
	@$(MAKE) --no-print-directory test-asan

# Under ASan (~4x slower) SR_QUICK=4 divides the seeded suites' rounds
# (tu_iters) and each fuzz target replays its whole corpus, no fresh inputs
# (SR_FUZZ_SECONDS=0; `make fuzz` fuzzes).
test-asan:
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 SR_FAULT_STRIDE=$${SR_FAULT_STRIDE:-$(ASAN_FAULT_STRIDE)} \
	  SR_QUICK=$${SR_QUICK:-4} SR_FUZZ_SECONDS=$${SR_FUZZ_SECONDS:-0} ctest --output-on-failure -j$(ASAN_TEST_JOBS) -LE noasan

run: build
	@bash scripts/run.sh $(BUILD)

bench: build
	@bash scripts/deps.sh --bench
	@bash bench/run.sh $(BUILD)

# Long crash/fault/kill runs: SR_SOAK multiplies the iteration counts (and
# test_logins' flood time); the fault suite tries every fault point.
soak: build
	@cd $(BUILD) && SR_SOAK=$${SR_SOAK:-20} SR_FAULT_STRIDE=1 ctest --output-on-failure -j2 \
	  -R 'crash|kill9|fault|durable|logins|fairness|overload|conn_limits'

# Each libFuzzer target for SR_FUZZ_SECONDS (default 300) after its corpus,
# in the ASan/UBSan build; new inputs in build-asan/tests/fuzz/<name>-new.
fuzz: build-asan
	@cd $(ASAN_BUILD) && SR_FUZZ_SECONDS=$${SR_FUZZ_SECONDS:-300} ctest --output-on-failure -j2 -L fuzz

# The binary, suiro(1), suiro.ini(5), the docs, the systemd unit and the
# default /etc/suiro/suiro.ini (kept if present) for PREFIX, under DESTDIR
# (docs/install.md). Creates no user and no data directory: the .deb does.
install: build
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

# build/suiro_VERSION_ARCH.deb from the build (scripts/deb.sh; docs/install.md)
deb: build
	@bash scripts/deb.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(ASAN_LOG)
