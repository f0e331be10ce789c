# freshrec — build, test, bench, demo.
#   make                   build/freshrec (and the tests' binaries on `make test`)
#   make test              unit tests (cmocka); installs missing Debian packages first
#   make bench             throughput figures with a reference in the same run
#   make demo              a generated stream learned end to end, with figures
#   make SANITIZE=address  (or undefined, or address,undefined): sanitized build in build/san-*
#   make deps              install (as root) or name the missing Debian packages

CC      ?= cc
PKGS    := openblas libxxhash jansson rdkafka hiredis libevent inih
TESTPKG := cmocka
# Every Debian package freshrec builds, tests or runs with.
DEBS    := pkg-config libopenblas-dev libxxhash-dev libjansson-dev \
           libcmocka-dev librdkafka-dev libhiredis-dev libevent-dev libinih-dev \
           redis-server

comma := ,
ifneq ($(SANITIZE),)
BUILD   := build/san-$(subst $(comma),-,$(SANITIZE))
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD   := build
SANFLAGS :=
endif
OPT     ?= -O3 -fno-math-errno -march=x86-64-v3 -mtune=generic
CFLAGS  := -std=c11 -Wall -Wextra -Werror $(OPT) -g $(SANFLAGS) -MMD -MP \
           -Ilearner -Iproto -Idaemon -Istore
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS = $(shell pkg-config --cflags $(TESTPKG) 2>/dev/null)
TEST_LIBS   = $(shell pkg-config --libs $(TESTPKG) 2>/dev/null)
LDLIBS   = $(PKG_LIBS) -lm
LDFLAGS := $(SANFLAGS)

MAINS       := daemon/freshrec.c daemon/freshrecd.c
LIB_SRC     := $(filter-out $(MAINS),$(wildcard learner/*.c proto/*.c store/*.c daemon/*.c))
LIB_OBJ     := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
LIB         := $(BUILD)/libfreshrec.a
BINS        := $(BUILD)/freshrec $(if $(wildcard daemon/freshrecd.c),$(BUILD)/freshrecd)
TEST_SRC    := $(wildcard tests/test_*.c)
HARNESS_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(TEST_SRC),$(wildcard tests/*.c)))
TEST_BIN    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

.PHONY: all test bench demo clean deps check-deps format

all: check-deps $(BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/freshrec: $(BUILD)/daemon/freshrec.o $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/freshrecd: $(BUILD)/daemon/freshrecd.o $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# fr-bench: load and freshness against a running freshrecd (bench/e2e.sh)
$(BUILD)/fr-bench: $(BUILD)/bench/freshness.o $(LIB)
	$(CC) $(LDFLAGS) -pthread $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(TEST_LIBS)

# A missing package is installed when we are root, else the command is printed.
deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
	  { apt-get update >/dev/null && apt-get install -y --no-install-recommends $$missing >/dev/null; } || \
	  { echo "deps: apt-get install failed for:$$missing" >&2; exit 1; }; \
	else \
	  echo "deps: missing Debian packages; run:" >&2; \
	  echo "  sudo apt-get install -y$$missing" >&2; exit 1; \
	fi

check-deps:
	@pkg-config --exists $(PKGS) 2>/dev/null || $(MAKE) --no-print-directory deps

test: deps
	@$(MAKE) --no-print-directory $(BINS) $(TEST_BIN)
	@BUILD=$(BUILD) sh tests/run.sh $(TEST_BIN)

bench: deps
	@$(MAKE) --no-print-directory $(BINS) $(BUILD)/fr-bench
	@BUILD=$(BUILD) sh bench/run.sh

demo: deps
	@$(MAKE) --no-print-directory $(BINS) $(BUILD)/fr-bench
	@BUILD=$(BUILD) sh bench/demo.sh

format:
	clang-format -i $(wildcard learner/*.[ch] proto/*.[ch] store/*.[ch] daemon/*.[ch] tests/*.[ch])

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
