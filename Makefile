# Quire: the two commands are `make run` and `make test`. Every target first installs the
# Debian packages it needs (scripts/install-deps.sh skips what is already there).
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
DATA ?= ./var
LISTEN ?= 127.0.0.1:8080

.PHONY: all deps configure build run test asan fuzz bench bench-pg bench-s3 bench-jp2 bench-av soak clean format

all: build

deps:
	@./scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	./$(BUILD_DIR)/quire serve --listen $(LISTEN) --data $(DATA)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure -j 2 --timeout 600

asan: deps
	@# Warnings stay on but not fatal here: GCC 12 reports maybe-uninitialized false positives
	@# inside libstdc++ (std::regex, std::function) once the sanitizers instrument it.
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUIRE_WERROR=OFF -DQUIRE_FUZZ=OFF \
	  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j 2 -L unit

# Every benchmark: bench/REPORT.md (ingest, tiles, API against their references), then
# bench/REPORT-postgresql.md (distributed mode), bench/REPORT-s3.md (S3 storage) and
# bench/REPORT-uploads.md (uploads and the client), bench/REPORT-events.md (streams, webhooks),
# bench/REPORT-jp2.md (JPEG 2000 ingest and the decode sandbox's cost), bench/REPORT-av.md
# (audio/video transcodes vs plain ffmpeg), bench/REPORT-presentation.md (manifests, auth).
bench: build
	./bench/run.sh
	./bench/run_pg.sh
	./bench/s3.sh
	./bench/uploads.sh
	./bench/events.sh
	./bench/jp2.sh
	./bench/av.sh
	./bench/presentation.sh

bench-pg: build
	./bench/run_pg.sh

bench-s3: build
	./bench/s3.sh

bench-jp2: build
	./bench/jp2.sh

bench-av: build
	./bench/av.sh

# Mixed load on one server for SOAK_S seconds (default 30 min), then every invariant checked.
SOAK_S ?= 1800
soak: build
	SOAK_S=$(SOAK_S) ./$(BUILD_DIR)/tests/soak_test

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h')

clean:
	rm -rf $(BUILD_DIR) build-asan
