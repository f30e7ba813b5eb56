# vcfs - one Makefile for libraries, tools, daemons, tests and benchmarks.
#
#   make               build everything into build/
#   make check         install what is missing, start the test servers, run every test
#   make demo          the README's demo
#   make bench         benchmarks (tables beside the raw backing store)
#   make lint          no storage syscalls outside disk/
#   make install       PREFIX=/usr/local DESTDIR=
#   make fuzz          libFuzzer targets (clang) into build-fuzz/fuzz/ (tests/fuzz.sh)
# Switches: V=1 (show commands), WERROR=1 (default in CI),
#           SAN=asan (address,undefined into build-asan/), SAN=tsan (thread into
#           build-tsan/), or SAN=<-fsanitize list> into build/,
#           RADOS=1/0 (default: on when librados is installed), DEBUG=1 (-O0).

CC       ?= cc
PREFIX   ?= /usr/local
SBINDIR  ?= $(PREFIX)/sbin
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
B        := build

# Sanitizer builds live in their own tree so that they never mix with build/
# (tests/sanitizers.sh runs scripts against them through VCFS_BUILD).
SANFLAGS := $(SAN)
ifeq ($(SAN),asan)
B        := build-asan
SANFLAGS := address,undefined
endif
ifeq ($(SAN),tsan)
B        := build-tsan
SANFLAGS := thread
endif
# The fuzzing build: clang, coverage for libFuzzer, ASan + UBSan (make fuzz).
ifeq ($(FUZZ),1)
B        := build-fuzz
CC       := clang
SANFLAGS := fuzzer-no-link,address,undefined
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

ifneq ($(CI),)
WERROR ?= 1
endif

ifeq ($(RADOS),)
RADOS := $(shell test -f /usr/include/rados/librados.h && echo 1 || echo 0)
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
OPT  := $(if $(DEBUG),-O0,-O2) -g
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 $(OPT) $(WARN) \
	$(if $(filter 1,$(WERROR)),-Werror) -MMD -MP -pthread -I. \
	$(if $(SANFLAGS),-fsanitize=$(SANFLAGS) -fno-omit-frame-pointer) \
	$(shell pkg-config --cflags fuse3 libiscsi libnfs jansson uuid) $(CFLAGS)
LDFLAGS_ALL := -pthread $(if $(SANFLAGS),-fsanitize=$(SANFLAGS)) $(LDFLAGS)
LIBS := $(shell pkg-config --libs libiscsi libnfs uuid) -lm
ifeq ($(RADOS),1)
CFLAGS_ALL += -DVCFS_HAVE_RADOS
LIBS += -lrados
endif
FUSE_LIBS  := $(shell pkg-config --libs fuse3)
JSON_LIBS  := $(shell pkg-config --libs jansson)
CHECK_LIBS := $(shell pkg-config --libs check)

# ---- the library: every module below the front ends ----
LIB_DIRS := common disk fs lock journal
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
LIBVCFS  := $(B)/libvcfs.a

# ---- programs: one main per file ----
TOOLS      := $(patsubst tools/%.c,$(B)/%,$(wildcard tools/*.c))
DAEMONS    := $(patsubst fuse/%.c,$(B)/%,$(wildcard fuse/*.c))
TEST_UNITS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/check_*.c))
TEST_PROGS := $(patsubst tests/disk/%.c,$(B)/tests/%,$(wildcard tests/disk/*.c))
BENCHES    := $(patsubst bench/%.c,$(B)/bench/%,$(wildcard bench/*.c))

all: $(LIBVCFS) $(TOOLS) $(DAEMONS) $(TEST_UNITS) $(TEST_PROGS) $(BENCHES)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(LIBVCFS): $(LIB_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/%: $(B)/tools/%.o $(LIBVCFS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBVCFS) $(LIBS) $(FUSE_LIBS) $(JSON_LIBS)

$(B)/%: $(B)/fuse/%.o $(LIBVCFS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBVCFS) $(LIBS) $(FUSE_LIBS)

$(B)/tests/%: $(B)/tests/unit/%.o $(LIBVCFS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBVCFS) $(LIBS) $(CHECK_LIBS)

$(B)/tests/%: $(B)/tests/disk/%.o $(LIBVCFS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBVCFS) $(LIBS)

$(B)/bench/%: $(B)/bench/%.o $(LIBVCFS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBVCFS) $(LIBS) -lm

# ---- hypervisor/: libvcvm.a (QMP client, VM config, VM control) under vcvm ----
HV_PROG_SRC := $(wildcard hypervisor/vcvm.c hypervisor/vcvm-agent.c)
HV_CRYPTO   := -lcrypto
HV_LIB_SRC  := $(filter-out $(HV_PROG_SRC),$(wildcard hypervisor/*.c))
LIBVCVM     := $(B)/libvcvm.a
HV_PROGS    := $(HV_PROG_SRC:hypervisor/%.c=$(B)/%)
HV_UNITS    := $(B)/tests/check_qmp $(B)/tests/check_vmcfg $(B)/tests/check_wire
HV_GUEST    := $(B)/tests/guest/check_counter
all: $(LIBVCVM) $(HV_PROGS) $(HV_GUEST)
$(LIBVCVM): $(HV_LIB_SRC:%.c=$(B)/%.o)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^
$(HV_PROGS): $(B)/%: $(B)/hypervisor/%.o $(LIBVCVM) $(LIBVCFS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBVCVM) $(LIBVCFS) $(LIBS) $(JSON_LIBS) $(HV_CRYPTO)
$(HV_UNITS): $(B)/tests/%: $(B)/tests/unit/%.o $(LIBVCVM) $(LIBVCFS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $< $(LIBVCVM) $(LIBVCFS) $(LIBS) $(JSON_LIBS) $(CHECK_LIBS) $(HV_CRYPTO)
$(HV_GUEST): $(B)/tests/guest/%: $(B)/tests/guest/%.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $<
install: install-hv
install-hv: $(HV_PROGS)
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(HV_PROGS) $(DESTDIR)$(BINDIR)/
.PHONY: install-hv
# The -MMD files are made by the compiler, never by a rule: saying so stops make
# searching its pattern rules (several $(B)/% ones) for how to remake each .d,
# which took minutes per make invocation.
$(B)/%.d: ;

# ---- fuzzing (tests/fuzz/, run by tests/fuzz.sh): one libFuzzer target per
# parser of on-disk data or user input, linked against a clang build of the
# libraries with ASan + UBSan in build-fuzz/ ----
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/fuzz/%)
fuzz:
	$(Q)$(MAKE) --no-print-directory FUZZ=1 $(FUZZ_BIN)
ifeq ($(FUZZ),1)
# the crc loop runs over every block read and has no branch worth guiding the
# fuzzer by: without coverage hooks the image targets run twice as fast
$(B)/common/crc32c.o: CFLAGS_ALL += -fno-sanitize=fuzzer-no-link
FUZZ_HV := $(B)/hypervisor/vmcfg.o $(B)/hypervisor/hv_err.o
$(FUZZ_BIN): build-fuzz/fuzz/%: build-fuzz/tests/fuzz/%.o $(FUZZ_HV) $(LIBVCFS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -fsanitize=fuzzer -o $@ $< $(FUZZ_HV) $(LIBVCFS) $(LIBS) $(JSON_LIBS)
endif

# ---- running things ----
check:
	bash tests/run.sh

demo:
	bash tools/demo.sh

bench: all
	bash bench/run.sh

# No storage syscalls on the datastore outside the backends (STYLE.md).
lint:
	@bad=$$(grep -nE '\b(pread|pwrite|preadv|pwritev|ioctl|fallocate)[[:space:]]*\(' \
		$$(ls $(filter-out disk/%,$(LIB_SRC)) fuse/*.c 2>/dev/null) || true); \
	if [ -n "$$bad" ]; then echo "storage syscalls outside disk/:"; echo "$$bad"; exit 1; fi; \
	echo "lint: ok"

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8
	for t in $(TOOLS) $(DAEMONS); do \
		n=$$(basename $$t); case $$n in mkfs.*|fsck.*|mount.*|vcfs-fuse) d=$(SBINDIR);; *) d=$(BINDIR);; esac; \
		install -m 755 $$t $(DESTDIR)$$d/$$n; done
	install -m 755 tools/mount.vcfs $(DESTDIR)$(SBINDIR)/mount.vcfs
	for m in man/*.[18]; do [ -f "$$m" ] || continue; s=$${m##*.}; \
		install -m 644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done

clean:
	rm -rf $(B)

.PHONY: all check demo bench lint install clean fuzz
.SECONDARY:

-include $(shell find $(B) -name '*.d' 2>/dev/null)
