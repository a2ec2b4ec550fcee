# Thin wrapper around CMake/CTest and the local stack. See README.md.
BUILD ?= build
CMAKE_FLAGS ?=
STACK := deploy/local/stack
SERVICES := deploy/local/services
WITH_STACK := deploy/local/with-stack

.PHONY: all build bootstrap test test-unit test-sanitize fuzz demo bench up down status format format-check clean \
	distclean compose-test bench-pipeline-full chaos bench-soak

all: build

bootstrap:
	@deploy/local/bootstrap

$(BUILD)/build.ninja:
	@cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS) >/dev/null

build: $(BUILD)/build.ninja
	@cmake --build $(BUILD)

# Everything: install what is missing, build, run all tests against a real local Kafka + Redis
# (brought up for the run and stopped afterwards unless it was already running).
test: bootstrap
	@$(MAKE) --no-print-directory build
	@$(WITH_STACK) ctest --test-dir $(BUILD) --output-on-failure $(CTEST_FLAGS)

test-unit: build
	@ctest --test-dir $(BUILD) --output-on-failure -L unit $(CTEST_FLAGS)

# The unit tests built with AddressSanitizer and UndefinedBehaviorSanitizer (a build of its own in
# $(BUILD_SANITIZE)); any report fails the test (-fno-sanitize-recover=all).
BUILD_SANITIZE ?= build-sanitize
test-sanitize: bootstrap
	@cmake -S . -B $(BUILD_SANITIZE) -G Ninja -DSANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(BUILD_SANITIZE)
	@ctest --test-dir $(BUILD_SANITIZE) --output-on-failure -L unit $(CTEST_FLAGS)

# The libFuzzer harnesses of tests/fuzz (clang, a build of their own in build-fuzz/), each run for
# FUZZ_SECONDS (default 30); a crash, sanitizer report, leak or timeout fails. See tests/fuzz/README.md.
fuzz: bootstrap
	@tests/fuzz/run

demo: bootstrap
	@$(MAKE) --no-print-directory build
	@STINT_BIN_DIR='$(abspath $(BUILD))/bin' deploy/local/demo

bench: bootstrap
	@$(MAKE) --no-print-directory build
	@$(WITH_STACK) bench/run

# The five services end to end on the local stack: bench/full_pipeline generates USERS x DAYS of
# listens, trains a small bundle, replays it all (--max) and prints listens/s, CPU and peak RSS per
# service, broker and Redis CPU, Redis bytes per user and the broker's own produce/consume limit.
# USERS=1000 DAYS=1500 is the issue's full size (18.7 M listens).
USERS ?= 400
DAYS ?= 300
bench-pipeline-full: bootstrap
	@$(MAKE) --no-print-directory build
	@STINT_BIN_DIR='$(abspath $(BUILD))/bin' $(WITH_STACK) bench/full_pipeline --users $(USERS) --days $(DAYS)

# The five services under live traffic for MINUTES (default 60) at RATE listens/s (2000), a random
# service SIGKILLed every KILL_EVERY_S (300), on a private stack of its own; one line per minute of
# RSS, open fds, Redis keys and memory, lags (bench/soak, docs/soak.md).
MINUTES ?= 60
RATE ?= 2000
KILL_EVERY_S ?= 300
bench-soak: bootstrap
	@$(MAKE) --no-print-directory build
	@STINT_BIN_DIR='$(abspath $(BUILD))/bin' bench/soak --minutes $(MINUTES) --rate $(RATE) --kill-every-s $(KILL_EVERY_S)

# The stack (Kafka + Redis) and the five services in the background; see deploy/local/services.
up: bootstrap
	@$(MAKE) --no-print-directory build
	@$(STACK) up
	@STINT_BIN_DIR='$(abspath $(BUILD))/bin' $(SERVICES) up

# The services (SIGTERM, each commits and exits 0), then the stack.
down:
	@$(STACK) down

status:
	@rc=0; $(STACK) status || rc=1; $(SERVICES) status || rc=1; exit $$rc

# docker-compose.yml run for real without Docker or an image registry: podman, images built from a
# debootstrapped Debian, the stack up, tools, a stream with a service restarted, then down -v.
# Needs root (rootful podman). See docs/deployment.md, "Running with podman".
compose-test:
	@deploy/compose/test

# The whole pipeline under faults on a private stack of its own (tests/chaos/chaos.py): random
# SIGKILLs of every service, SIGKILL of Redis and of the Kafka broker, a pause past the session
# timeout, zombies; compared with a clean run and with `stint sessions` offline, and a self-check
# on planted faults. CHAOS_SEED picks the schedule (printed; rerun a failure with the same seed).
CHAOS_SEED ?= 1
chaos: bootstrap
	@$(MAKE) --no-print-directory build
	@STINT_BIN_DIR='$(abspath $(BUILD))/bin' tests/chaos/chaos.py --seed $(CHAOS_SEED)

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

# Fails, naming the files, when any C file differs from what `make format` would make of it.
format-check: bootstrap
	@bad=$$(for f in $$(git ls-files '*.c' '*.h'); do \
	    clang-format --dry-run -Werror "$$f" >/dev/null 2>&1 || echo "$$f"; done); \
	if [ -n "$$bad" ]; then echo "not clang-formatted (run make format):" $$bad >&2; exit 1; fi

clean:
	@rm -rf $(BUILD) $(BUILD_SANITIZE)

distclean: clean
	@$(STACK) clean
