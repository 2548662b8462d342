# Thin driver over CMake. `make run` and `make test` are the two commands in
# README.md; .ci/run calls `make test`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
PYTHON     ?= /usr/bin/python3
CONF       ?= sluice.conf

.PHONY: all deps build asan tsan fuzz-build run test unit integration tools-test test-asan fuzz fuzz-smoke bench clean

all: build

deps:
	@./tools/install-deps.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/Makefile:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON

asan: $(ASAN_BUILD)/Makefile
	cmake --build $(ASAN_BUILD) -j $(JOBS)

$(TSAN_BUILD)/Makefile:
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_TSAN=ON

tsan: $(TSAN_BUILD)/Makefile
	cmake --build $(TSAN_BUILD) -j $(JOBS)

# Serve the sample site on 127.0.0.1:8080 with the shipped config.
run: deps build
	./$(BUILD)/sluice -c $(CONF)

# Everything CI runs: unit and integration tests on the normal build, then
# again under ASan+UBSan, then under ThreadSanitizer, then a short bounded
# fuzz run.
test: deps
	$(MAKE) build
	$(MAKE) tools-test unit integration
	$(MAKE) asan
	$(MAKE) unit integration BUILD=$(ASAN_BUILD)
	$(MAKE) tsan
	$(MAKE) unit integration BUILD=$(TSAN_BUILD) TESTS="$(TSAN_TESTS)"
	$(MAKE) fuzz-smoke
	@echo "make test: all suites passed"

unit:
	cd $(BUILD) && ctest --output-on-failure

# TESTS: which integration tests (default: all of them).
TESTS ?= tests/integration
integration:
	SLUICE_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q $(TESTS)

# Under ThreadSanitizer (5-15 times slower), the tests where threads meet
# most: hand-offs between stages, thread resizing and reloads, the adaptive
# admission limit, timers after long rounds, the status socket, inline sends,
# switching who accepts live and stopping while the readers accept.
# The rest run in the two other builds; `make unit integration
# BUILD=build-tsan` runs every integration test under TSan (8 minutes here).
TSAN_TESTS ?= $(addprefix tests/integration/,test_threads.py test_daemon.py \
	test_admission_limit.py test_synfilter.py test_review_loop.py test_status.py test_inline.py \
	test_reader_accept.py::test_switching_live_between_acceptor_threads_and_readers \
	test_reader_accept.py::test_stop_while_the_readers_accept_under_load)

# The lab's own logic (tools/lab, tools/sluice-sweep): no server, no timing.
tools-test:
	$(PYTHON) -m pytest -q tests/tools

$(FUZZ_BUILD)/Makefile:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_FUZZ=ON -DSLUICE_SANITIZE=ON

fuzz-build: $(FUZZ_BUILD)/Makefile
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_http_parse fuzz_normalize fuzz_proxy fuzz_response

# A short, bounded fuzz run over the seed corpus (part of `make test`).
fuzz-smoke: fuzz-build
	./tools/fuzz-run.sh $(FUZZ_BUILD) 30

# A longer fuzz run: make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 300
fuzz: fuzz-build
	./tools/fuzz-run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: deps build
	./tools/sluice-bench $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
