# The two set-up commands of the README:
#   make run    install what is missing, build, run the gateway on its embedded default
#   make test   install what is missing, build, run every test (normal build, then ASan+UBSan,
#               then short libFuzzer runs)
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz

.PHONY: all deps test-deps configure-run build install run test test-normal test-asan test-fuzz fuzz-long bench format clean

all: build

deps:
	scripts/install-deps.sh

test-deps:
	scripts/install-deps.sh --test

# The gateway alone: no test package is needed (SKULD_TESTS=OFF). cmake's output is
# kept in $(BUILD)/configure.log and shown when the configure fails.
configure-run: deps
	@mkdir -p $(BUILD)
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSKULD_TESTS=OFF \
	    >$(BUILD)/configure.log 2>&1 || { cat $(BUILD)/configure.log; \
	    echo "make: configuring failed (above); scripts/install-deps.sh installs what is missing" >&2; exit 1; }

build: configure-run
	cmake --build $(BUILD) -j$(JOBS) --target skuld

# make install [PREFIX=/usr/local] [DESTDIR=...]: bin/skuld, lib/skuld/ (llama.cpp),
# etc/skuld/skuld.yaml, lib/systemd/system/skuld.service (README, Install).
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

run: build
	./$(BUILD)/skuld serve

# Every test through ctest; a run that executes no test fails (--no-tests=error).
test: test-deps
	$(MAKE) test-normal test-asan test-fuzz

test-normal:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSKULD_TESTS=ON -DSKULD_ALLOW_NO_E2E=OFF
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --no-tests=error --output-on-failure -j2

test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSKULD_SANITIZE=ON -DSKULD_TESTS=ON -DSKULD_ALLOW_NO_E2E=OFF
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ctest --no-tests=error --output-on-failure -j2

# libFuzzer targets (tests/fuzz), clang only: a build of just those (no gateway,
# llama.cpp or e2e), each run for a short fixed budget on a copy of its corpus.
test-fuzz:
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSKULD_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j$(JOBS)
	cd $(FUZZ_BUILD) && ctest --no-tests=error --output-on-failure -j2 -L fuzz

# Fuzzing at depth: every target for FUZZ_SECS (default 3600) on a work copy of its
# corpus, FUZZ_JOBS at a time, new coverage merged back into tests/fuzz/corpus/
# (scripts/fuzz-long.sh; README, Fuzzing). FUZZ_TARGETS="a b" runs only those.
FUZZ_SECS ?= 3600
FUZZ_JOBS ?= 1
fuzz-long:
	FUZZ_SECS=$(FUZZ_SECS) FUZZ_JOBS=$(FUZZ_JOBS) FUZZ_BUILD=$(FUZZ_BUILD) scripts/fuzz-long.sh

# bench/run builds its own RelWithDebInfo skuld in build-bench/ (see bench/BENCHMARKS.md).
bench:
	scripts/install-deps.sh --bench
	bench/run

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
