# Thin wrapper around CMake/CTest and the local stack. See README.md.
BUILD ?= build
CMAKE_FLAGS ?=
STACK := deploy/local/stack
WITH_STACK := deploy/local/with-stack

.PHONY: all build bootstrap test test-unit demo bench up down status format clean distclean

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

demo: bootstrap
	@$(MAKE) --no-print-directory build
	@deploy/local/demo

bench: bootstrap
	@$(MAKE) --no-print-directory build
	@$(WITH_STACK) bench/run

up: bootstrap
	@$(STACK) up

down:
	@$(STACK) down

status:
	@$(STACK) status

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	@rm -rf $(BUILD)

distclean: clean
	@$(STACK) clean
