# freshrec — build, test, bench, demo.
#   make                   build/freshrec (and the tests' binaries on `make test`)
#   make test              check-layers, then every test: tests/unit/ and tests/integration/ (cmocka, and
#                          the alert rules' tests); installs missing Debian packages first
#   make test-unit         tests/unit/ alone: no servers, seconds
#   make check-layers      each #include against the layering (base, learner, proto, store, data, cli,
#                          daemon: README.md's layout) named by file and line
#   make test-rules        the alert rules alone: promtool check rules, promtool test rules
#   make bench             throughput and checkpoint-stall figures, each with a reference in the same run
#                          (BENCH_ONLY=ckpt: the checkpoint stall alone)
#   make demo              a generated stream learned end to end, with figures
#   make eval              freshrec eval (prequential, every arm) on the real and generated streams
#   make SANITIZE=address  (or undefined, or address,undefined): sanitized build in build/san-*
#   make deps              install (as root) or name the missing Debian packages
#   make install           PREFIX=/usr/local DESTDIR=: binaries, unit, config, docs
#   make fuzz              each libFuzzer target (tests/fuzz/fuzz_*.c) for FUZZ_SECONDS (60)
#   make format            rewrite every C file as clang-format (.clang-format) writes it
#   make format-check      name each C file clang-format would change (CI runs it)

CC      ?= cc
PKGS    := openblas libxxhash jansson rdkafka hiredis libevent inih libsystemd
TESTPKG := cmocka
# Every Debian package freshrec builds, tests or runs with.
DEBS    := pkg-config libopenblas-dev libxxhash-dev libjansson-dev \
           libcmocka-dev librdkafka-dev libhiredis-dev libevent-dev libinih-dev \
           libsystemd-dev systemd redis-server prometheus chromium libjs-dygraphs xxd kcat
# What `make fuzz` needs on top: clang and its runtimes (libFuzzer, ASan, UBSan).
FUZZ_DEBS := clang-14 libclang-rt-14-dev
# What `make bench` needs on top: PyTorch, for the reference (bench/torch_neumf.py).
BENCH_DEBS := python3-torch
# What `make eval` needs on top: gnuplot, for the pictures (without it: the .tsv series only).
EVAL_DEBS := gnuplot-nox
# What `make format` and `make format-check` need: clang-format (14 on Debian 12).
FORMAT_DEBS := clang-format

comma := ,
ifneq ($(SANITIZE),)
BUILD   := build/san-$(subst $(comma),-,$(SANITIZE))
SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD   := build
SANFLAGS :=
endif
OPT     ?= -O3 -fno-math-errno -march=x86-64-v3 -mtune=generic
CFLAGS  := -std=c11 -Wall -Wextra -Werror $(OPT) -g $(SANFLAGS) -MMD -MP
# Per-folder include paths: a source sees only the folders it may include
# (README.md's layout), so an include against the layering fails to build;
# `make check-layers` names it. The folder is the first part of the path.
INC_base    := -Ibase
INC_learner := -Ibase -Ilearner
INC_proto   := -Ibase -Iproto
INC_store   := -Ibase -Iproto -Istore
INC_data    := -Ibase -Ilearner -Idata
INC_cli     := -Ibase -Ilearner -Iproto -Istore -Idata -Icli
INC_daemon  := -Ibase -Ilearner -Iproto -Istore -Idaemon
INC_ALL     := -Ibase -Ilearner -Iproto -Istore -Idata -Icli -Idaemon
INC_bench   := $(INC_ALL)
INC_tests   := $(INC_ALL) -Itests
incs = $(INC_$(firstword $(subst /, ,$(1))))
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS = $(shell pkg-config --cflags $(TESTPKG) 2>/dev/null)
TEST_LIBS   = $(shell pkg-config --libs $(TESTPKG) 2>/dev/null)
LDLIBS   = $(PKG_LIBS) -lpthread -lm
LDFLAGS := $(SANFLAGS)

# freshrecd's own files (daemon/freshrecd.h): linked into it alone, not the library
FRESHRECD_SRC := daemon/freshrecd.c daemon/ingest.c daemon/sync.c daemon/checkpoint.c \
                 daemon/cluster.c
MAINS       := $(FRESHRECD_SRC)
LIB_SRC     := $(filter-out $(MAINS),$(wildcard base/*.c learner/*.c proto/*.c store/*.c data/*.c daemon/*.c))
LIB_OBJ     := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
CLI_OBJ     := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/*.c))
LIB         := $(BUILD)/libfreshrec.a
BINS        := $(BUILD)/freshrec $(if $(wildcard daemon/freshrecd.c),$(BUILD)/freshrecd)
# tests/unit/: no servers, seconds in all (make test-unit); tests/integration/:
# real redis-server, mock Kafka, freshrecd, Chromium, promtool. The other
# tests/*.c are the harness both link. A tests/test_*.c (a branch from before
# the split) still builds and runs in make test, with a note to move it.
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
INTEG_SRC   := $(wildcard tests/integration/test_*.c)
STRAY_SRC   := $(wildcard tests/test_*.c)
TEST_SRC    := $(UNIT_SRC) $(INTEG_SRC) $(STRAY_SRC)
HARNESS_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(filter-out $(STRAY_SRC),$(wildcard tests/*.c)))
UNIT_BIN    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
TEST_BIN    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

# libFuzzer targets: tests/fuzz/fuzz_NAME.c, built with FUZZ_SRC_NAME into
# build/fuzz/fuzz_NAME, seeded from tests/fuzz/corpus/NAME/. A new target is
# its file, its corpus and one FUZZ_SRC_ line.
FUZZCC       ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -std=c11 -Wall -Wextra -Werror -O1 -g -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -MMD -MP
FUZZ_SRC_event := proto/event.c
FUZZ_SRC_mlog  := proto/mlog.c
FUZZ_SRC_ckpt  := store/ckpt.c learner/table.c learner/optim.c learner/ring.c learner/join.c learner/feat.c \
                  learner/ctrlayers.c
fuzz_objs = $(addprefix build/fuzz/,$(FUZZ_SRC_$(1):.c=.o))
FUZZ_BIN := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all test test-unit check-layers test-rules bench demo eval clean deps check-deps format format-check fuzz install

PREFIX  ?= /usr/local
SYSCONF ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system

all: check-deps $(BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(call incs,$<) $(PKG_CFLAGS) -c $< -o $@

# The dashboard (daemon/dashboard.c) is daemon/dashboard.html with Debian's
# dygraphs inlined: read from the package at build time, never copied into the
# repo. Its licence header stays; its source-map comments go (the page would
# ask the stats port for the maps); a closing tag inside it would end the
# page's <script> or <style> early, so the build refuses one.
DYGRAPHS_JS  := /usr/share/javascript/dygraphs/dygraph.min.js
DYGRAPHS_CSS := /usr/share/javascript/dygraphs/dygraph.min.css

$(BUILD)/gen/dashboard.html: daemon/dashboard.html $(DYGRAPHS_JS) $(DYGRAPHS_CSS)
	@mkdir -p $(dir $@)
	@if grep -qi -e '</script' -e '</style' $(DYGRAPHS_JS) $(DYGRAPHS_CSS); then \
	  echo "dashboard: a closing tag in dygraphs; it cannot be inlined" >&2; exit 1; fi
	sed -e '/^\/\/# sourceMappingURL=/d' -e 's|/\*# sourceMappingURL=[^*]*\*/||' \
	    $(DYGRAPHS_JS) > $@.js
	sed -e 's|/\*# sourceMappingURL=[^*]*\*/||' $(DYGRAPHS_CSS) > $@.css
	sed -e '/^@DYGRAPHS_JS@$$/{r $@.js' -e 'd;}' -e '/^@DYGRAPHS_CSS@$$/{r $@.css' -e 'd;}' \
	    daemon/dashboard.html > $@.tmp
	@if grep -q '@DYGRAPHS_' $@.tmp; then echo "dashboard: a marker left in $@" >&2; exit 1; fi
	@mv $@.tmp $@; rm -f $@.js $@.css

$(BUILD)/gen/dashboard.inc: $(BUILD)/gen/dashboard.html
	xxd -i < $< > $@.tmp && mv $@.tmp $@

$(BUILD)/daemon/dashboard.o: $(BUILD)/gen/dashboard.inc
$(BUILD)/daemon/dashboard.o: CFLAGS += -I$(BUILD)/gen

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/freshrec: $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/freshrecd: $(patsubst %.c,$(BUILD)/%.o,$(FRESHRECD_SRC)) $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# fr-bench: load and freshness against a running freshrecd (bench/e2e.sh)
$(BUILD)/fr-bench: $(BUILD)/bench/freshness.o $(LIB)
	$(CC) $(LDFLAGS) -pthread $^ -o $@ $(LDLIBS)

# fr-pub-bench: vectors/s the publisher writes to one Redis or a Redis Cluster (bench/publish.sh)
$(BUILD)/fr-pub-bench: $(BUILD)/bench/publish.o $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# fr-ckpt-bench: how long a checkpoint holds the loop, NeuMF-32 with 1M+1M ids (bench/run.sh)
$(BUILD)/fr-ckpt-bench: $(BUILD)/bench/ckpt_stall.o $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INC_tests) $(PKG_CFLAGS) $(TEST_CFLAGS) -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(HARNESS_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(TEST_LIBS)

# test_shared drives members.c, which lives in cli/ (not in the library)
$(BUILD)/tests/unit/test_shared: $(BUILD)/tests/unit/test_shared.o $(BUILD)/cli/members.o \
                                $(HARNESS_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(TEST_LIBS)

# test_eval drives the evaluation's replay and arms, which live in cli/ (not in the library)
$(BUILD)/tests/unit/test_eval: $(BUILD)/tests/unit/test_eval.o $(BUILD)/cli/eval.o $(BUILD)/cli/evalarms.o \
                              $(HARNESS_OBJ) $(LIB)
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(TEST_LIBS)

build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZCC) $(FUZZ_CFLAGS) $(call incs,$<) $(PKG_CFLAGS) -c $< -o $@

.PRECIOUS: build/fuzz/%.o
.SECONDEXPANSION:
build/fuzz/fuzz_%: build/fuzz/tests/fuzz/fuzz_%.o $$(call fuzz_objs,$$*)
	$(FUZZCC) $(FUZZ_CFLAGS) $^ -o $@ $(LDLIBS)

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
	@{ pkg-config --exists $(PKGS) && [ -r $(DYGRAPHS_JS) ]; } 2>/dev/null || \
	    $(MAKE) --no-print-directory deps

# tests/integration/test_rules.sh (promtool on systemd/freshrec-alerts*.yml) counts as one test
test: deps check-layers
	@for f in $(STRAY_SRC); do echo "note: $$f belongs in tests/unit/ or tests/integration/" >&2; done
	@$(MAKE) --no-print-directory $(BINS) $(TEST_BIN)
	@BUILD=$(BUILD) sh tests/run.sh $(TEST_BIN) tests/integration/test_rules.sh

# The unit tests alone: no servers, no binaries, seconds.
test-unit: check-deps
	@$(MAKE) --no-print-directory $(UNIT_BIN)
	@BUILD=$(BUILD) sh tests/run.sh $(UNIT_BIN)

# Each #include against the layering (README.md, Layout), named by file and line.
check-layers:
	@sh tests/check_layers.sh

test-rules: deps
	@sh tests/integration/test_rules.sh

bench:
	@$(MAKE) --no-print-directory deps DEBS="$(DEBS) $(BENCH_DEBS)"
	@$(MAKE) --no-print-directory $(BINS) $(BUILD)/fr-bench $(BUILD)/fr-ckpt-bench $(BUILD)/fr-pub-bench
	@BUILD=$(BUILD) sh bench/run.sh

demo: deps
	@$(MAKE) --no-print-directory $(BINS) $(BUILD)/fr-bench
	@BUILD=$(BUILD) sh bench/demo.sh

# freshrec eval on ML-100k and movielens-latest-small (when ../shared/data has them) and on two
# generated streams with planted drift: tables on stdout, series and pictures in build/eval/.
eval:
	@$(MAKE) --no-print-directory deps DEBS="$(DEBS) $(EVAL_DEBS)" || \
	    echo "eval: gnuplot missing: the series only, no pictures" >&2
	@$(MAKE) --no-print-directory $(BUILD)/freshrec
	@BUILD=$(BUILD) bash bench/eval.sh

# Each target runs over build/fuzz/corpus/NAME, the committed seeds copied in
# (what it finds accumulates there, never in tests/); a crash, leak, timeout
# or abort fails the run and leaves its input in build/fuzz/.
fuzz:
	@$(MAKE) --no-print-directory deps DEBS="$(DEBS) $(FUZZ_DEBS)"
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	@for t in $(FUZZ_BIN); do \
	  name=$${t#build/fuzz/fuzz_}; corpus=build/fuzz/corpus/$$name; \
	  mkdir -p $$corpus && cp tests/fuzz/corpus/$$name/* $$corpus/ || exit 1; \
	  echo "== fuzz_$$name for $(FUZZ_SECONDS) s"; \
	  $$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=70000 -timeout=10 \
	      -print_final_stats=1 -artifact_prefix=build/fuzz/fuzz_$$name- $$corpus \
	      || { echo "fuzz: fuzz_$$name failed; input in build/fuzz/fuzz_$$name-*" >&2; exit 1; }; \
	done

# The unit names the installed binary; an existing config is never replaced.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONF)/freshrec \
	    $(DESTDIR)$(PREFIX)/share/doc/freshrec
	install -m 0755 $(BUILD)/freshrecd $(BUILD)/freshrec $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|/usr/bin/freshrecd|$(PREFIX)/bin/freshrecd|' \
	    -e 's|/etc/freshrec/|$(SYSCONF)/freshrec/|' \
	    -e 's|/usr/share/doc/freshrec/|$(PREFIX)/share/doc/freshrec/|' \
	    systemd/freshrec.service > $(DESTDIR)$(UNITDIR)/freshrec.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/freshrec.service
	[ -e $(DESTDIR)$(SYSCONF)/freshrec/freshrec.conf ] || \
	    install -m 0644 systemd/freshrec.conf $(DESTDIR)$(SYSCONF)/freshrec/freshrec.conf
	install -m 0644 systemd/freshrec-alerts.yml $(DESTDIR)$(SYSCONF)/freshrec/freshrec-alerts.yml
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/freshrec/README.md
	install -m 0644 proto/README.md $(DESTDIR)$(PREFIX)/share/doc/freshrec/contracts.md

# Every C file is as clang-format (.clang-format) writes it: `make format`
# rewrites them, `make format-check` (in CI) names each file it would change.
FORMAT_SRC := $(wildcard base/*.[ch] learner/*.[ch] proto/*.[ch] store/*.[ch] data/*.[ch] \
              cli/*.[ch] daemon/*.[ch] bench/*.[ch] tests/*.[ch] tests/unit/*.c \
              tests/integration/*.c tests/fuzz/*.c)
format:
	@$(MAKE) --no-print-directory deps DEBS="$(FORMAT_DEBS)"
	clang-format -i $(FORMAT_SRC)

format-check:
	@$(MAKE) --no-print-directory deps DEBS="$(FORMAT_DEBS)"
	@bad=""; for f in $(FORMAT_SRC); do \
	  clang-format --dry-run -Werror $$f >/dev/null 2>&1 || bad="$$bad $$f"; \
	done; \
	if [ -n "$$bad" ]; then \
	  echo "format-check: not as clang-format writes them (run make format):$$bad" >&2; exit 1; \
	fi; echo "format-check: $(words $(FORMAT_SRC)) files as clang-format writes them"

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
