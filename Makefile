# The two commands for a fresh machine:
#   make run   set-up (packages, data), build, train the paper's predicted MNIST MLP and its dense baseline
#   make test  set-up, build, run every test
BUILD_DIR ?= build
BUILD_TYPE ?= Release
DEVICE ?= auto
JOBS ?= $(shell nproc)
GENERATOR := $(shell command -v ninja >/dev/null 2>&1 && echo Ninja || echo "Unix Makefiles")

.PHONY: run test setup data build clean run-dense sanitize

setup:
	@tools/setup.sh all

data:
	@tools/setup.sh data

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -G "$(GENERATOR)" -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: setup $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Only the CLI: a newcomer's first run should not wait for the test and benchmark programs.
run: setup $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS) --target uvtrain
	@tools/run_mnist.sh $(BUILD_DIR) $(DEVICE)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# ASan + UBSan build and tests in their own directory.
sanitize: setup
	cmake -S . -B build-sanitize -G "$(GENERATOR)" -DCMAKE_BUILD_TYPE=Debug -DUV_SANITIZE=ON -DUV_BUILD_BENCH=OFF
	cmake --build build-sanitize -j $(JOBS)
	cd build-sanitize && ctest --output-on-failure -j $(JOBS)

clean:
	rm -rf $(BUILD_DIR) build-sanitize
