# tapegrad: build, test, install. Run `make help` for the targets.
CC       ?= cc
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
BLIS_INC ?= /usr/include/$(MULTIARCH)/blis-openmp
BLIS_LIB ?= /usr/lib/$(MULTIARCH)/blis-openmp
PREFIX   ?= /usr/local
OPT      ?= -O3 -fno-math-errno
# OpenMP (libgomp, the runtime BLIS's OpenMP build already uses) splits the optimiser's
# per-element pass over the BLIS threads. Off for clang, whose OpenMP runtime is another one.
OPENMP   ?= $(if $(findstring clang,$(shell $(CC) --version 2>/dev/null)),,-fopenmp)
# make PLAIN=1 (with its own B=): the reference build, every fast path off: target_clones,
# BLIS path choice, the side-by-side gradient GEMMs, the threaded optimiser step.
PLAIN_CFLAGS = $(if $(PLAIN),-DTG_PLAIN -DTG_NO_CLONES)
WARN      = -Wall -Wextra -Wpedantic -Wshadow -Wvla -Wdouble-promotion
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(OPENMP) $(PLAIN_CFLAGS) \
             -Iinclude -isystem $(BLIS_INC) $(EXTRA_CFLAGS)
LDLIBS    = -L$(BLIS_LIB) -Wl,-rpath,$(BLIS_LIB) $(OPENMP) -lblis -llapack -lz -lm -lpthread $(EXTRA_LDFLAGS)
B        ?= build

DIRS     ?= autograd ops nn optim data dist
SKIP     ?=
# dist/comm_mpi.c is libtapegrad_mpi's: the core library never links MPI.
MPI_SRC  := dist/comm_mpi.c
LIB_SRC  := $(filter-out $(SKIP) $(MPI_SRC),$(foreach d,$(DIRS),$(wildcard $(d)/*.c)))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/obj/%.o)
# MPI (Open MPI's mpicc and mpirun): libtapegrad_mpi and the test/mpi_*.c programs are
# built when both are present (the deps step installs Debian's Open MPI as root).
MPICC    ?= mpicc
MPIRUN   ?= mpirun
HAVE_MPI := $(shell command -v $(MPICC) >/dev/null 2>&1 && command -v $(MPIRUN) >/dev/null 2>&1 && echo 1)
MPI_CFLAGS = $(shell $(MPICC) --showme:compile 2>/dev/null)
MPI_LIBS   = $(shell $(MPICC) --showme:link 2>/dev/null)
MPI_OBJ  := $(B)/obj/dist/comm_mpi.o
MPI_TESTS := $(patsubst test/%.c,$(B)/%,$(wildcard test/mpi_*.c))
TEST_SRC := $(wildcard test/test_*.c)
TESTS    := $(TEST_SRC:test/%.c=$(B)/%)
CLI_SRC  := $(wildcard cli/*.c)
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/obj/%.o)
# examples/: each demo file defines demo_<name>() for `tapegrad demo` and, built alone with
# -DTG_EXAMPLE_MAIN, is a program of its own. readme.c is only a program.
DEMO_SRC := $(filter-out examples/readme.c,$(wildcard examples/*.c))
DEMO_OBJ := $(DEMO_SRC:%.c=$(B)/obj/%.o)
EXAMPLES := $(patsubst examples/%.c,$(B)/examples/%,$(wildcard examples/*.c))
FASHION  := /usr/share/datasets/fashion-mnist
HEADERS  := $(wildcard include/*.h include/tapegrad/*.h autograd/*.h ops/*.h ops/*.def nn/*.h \
                       optim/*.h data/*.h dist/*.h cli/*.h test/*.h examples/*.h)
DEPS_OK  := $(B)/.deps-ok

.PHONY: mpi-lib mpi-tests bench-dist
.PHONY: all lib test asan tsan valgrind install clean deps help run examples cli data-deps bench bench-deps fuzz FORCE \
        format format-check lint lint-tidy lint-cppcheck werror
all: lib $(TESTS) $(B)/tapegrad
lib: $(B)/libtapegrad.a $(B)/libtapegrad.so

help:
	@echo "make run      install what is missing, build, train the default MLP on Fashion-MNIST"
	@echo "make          build build/libtapegrad.{a,so}, build/tapegrad and the tests"
	@echo "make test     build and run every test (ends with 'N passed, M failed')"
	@echo "make B=build/plain PLAIN=1 test   the tests on the reference build (every fast path off)"
	@echo "make asan     the tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make tsan     the tests under ThreadSanitizer (the library's own OpenMP loops off)"
	@echo "make valgrind the tests under valgrind memcheck"
	@echo "make bench    tape overhead, MLP throughput, GEMM efficiency, memory; PyTorch side by side"
	@echo "make bench-deps  install ADOL-C (libadolc-dev) for make bench's ADOL-C comparison"
	@echo "make fuzz     fuzz the IDX and CSV readers with libFuzzer (FUZZ_TIME=60 s each)"
	@echo "make format  clang-format -i every .c and .h (.clang-format; clang-format 14)"
	@echo "make format-check  fail, listing the places, when a file is not formatted"
	@echo "make lint    clang-tidy (.clang-tidy) and cppcheck on every .c file; fails on any finding"
	@echo "make werror  build everything with -Werror under gcc and under clang (CI runs it)"
	@echo "make examples build/examples/* (the README example and every demo as a program)"
	@echo "make install PREFIX=/usr/local   headers, libraries, tapegrad.pc and the tapegrad command"
	@echo "make mpi-lib  build/libtapegrad_mpi.{a,so}, the MPI communicator (needs mpicc; docs/distributed.md)"

# BLIS (Debian's OpenMP build) is the matrix engine. Installed here when missing and we are
# root with apt-get; otherwise one sentence says what to install.
$(DEPS_OK):
	@mkdir -p $(B)
	@if [ ! -f $(BLIS_INC)/blis.h ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "BLIS is missing: installing Debian's libblis-openmp-dev"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libblis-openmp-dev zlib1g-dev liblapack-dev) >/dev/null || exit 1; \
	  else \
	    echo "tapegrad needs BLIS: run 'sudo apt-get install libblis-openmp-dev zlib1g-dev liblapack-dev' (or set BLIS_INC and BLIS_LIB)." >&2; exit 1; \
	  fi; \
	fi
	@if [ ! -f /usr/include/zlib.h ] || ! ls /usr/lib/$(MULTIARCH)/liblapack.so >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "zlib or LAPACK is missing: installing Debian's zlib1g-dev and liblapack-dev"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zlib1g-dev liblapack-dev) >/dev/null || exit 1; \
	  else \
	    echo "tapegrad needs zlib and LAPACK: run 'sudo apt-get install zlib1g-dev liblapack-dev'." >&2; exit 1; \
	  fi; \
	fi
	@if ! command -v $(MPICC) >/dev/null 2>&1 || ! command -v $(MPIRUN) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Open MPI is missing: installing Debian's libopenmpi-dev openmpi-bin (for libtapegrad_mpi)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenmpi-dev openmpi-bin) >/dev/null \
	      || echo "deps: could not install Open MPI; libtapegrad_mpi and the MPI tests are skipped" >&2; \
	  else \
	    echo "Without Open MPI, libtapegrad_mpi and the MPI tests are skipped: 'sudo apt-get install libopenmpi-dev openmpi-bin' builds them." >&2; \
	  fi; \
	fi
	@touch $@
deps: $(DEPS_OK)

$(B)/obj/%.o: %.c $(HEADERS) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/libtapegrad.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libtapegrad.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS)

# libtapegrad_mpi: the MPI communicator (dist/comm_mpi.c) alone; it needs libtapegrad.
$(MPI_OBJ): dist/comm_mpi.c $(HEADERS) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) -c $< -o $@
mpi-lib: $(B)/libtapegrad_mpi.a $(B)/libtapegrad_mpi.so
$(B)/libtapegrad_mpi.a: $(MPI_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(B)/libtapegrad_mpi.so: $(MPI_OBJ) $(B)/libtapegrad.so
	$(CC) -shared -o $@ $(MPI_OBJ) -L$(B) -ltapegrad $(MPI_LIBS) $(EXTRA_LDFLAGS)
# test/mpi_*.c: programs that start themselves under mpirun; `make test` runs them when
# MPI is there (mpi-tests writes their list), and says it skipped them otherwise.
$(B)/mpi_%: test/mpi_%.c $(LIB_OBJ) $(MPI_OBJ) $(HEADERS)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) -fvisibility=default $< $(MPI_OBJ) $(LIB_OBJ) -o $@ $(LDLIBS) $(MPI_LIBS)
# bench/dist_bench.c under mpirun at 1 and 2 ranks (docs/distributed.md, Speed).
$(B)/dist_bench: bench/dist_bench.c $(LIB_OBJ) $(MPI_OBJ) $(HEADERS)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) $< $(MPI_OBJ) $(LIB_OBJ) -o $@ $(LDLIBS) $(MPI_LIBS)
bench-dist: $(B)/dist_bench
	for np in 1 2; do $(MPIRUN) -np $$np --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 $(B)/dist_bench $(ARGS); \
	  /usr/bin/python3 bench/torch/ddp.py --np $$np; done
# bench/ulp_scan.c: the accuracy of ops/vecmath.h over every float (docs/performance.md).
$(B)/ulp_scan: bench/ulp_scan.c $(LIB_OBJ) $(HEADERS)
	$(CC) $(ALL_CFLAGS) $< $(LIB_OBJ) -o $@ $(LDLIBS)
# bench/chain_phases.c: the 1-element chain phase by phase, for callgrind's instruction counts.
$(B)/chain_phases: bench/chain_phases.c bench/chain.h $(LIB_OBJ) $(HEADERS)
	$(CC) $(ALL_CFLAGS) $< $(LIB_OBJ) -o $@ $(LDLIBS)
# The scaling model's inputs (docs/distributed-scaling.md): allreduce times over MPI and the
# per-step compute of the bench MLP and the demo CNN.
$(B)/alpha_beta: bench/alpha_beta.c | $(DEPS_OK)
	$(MPICC) -O2 -std=c11 $< -o $@ -lm
$(B)/step_time: bench/step_time.c $(LIB_OBJ) $(HEADERS)
	$(CC) $(ALL_CFLAGS) $< $(LIB_OBJ) -o $@ $(LDLIBS)
mpi-tests: | $(DEPS_OK)
ifeq ($(HAVE_MPI),1)
	@echo $(MPI_TESTS) > $(B)/mpi-tests.list
	@$(MAKE) --no-print-directory $(MPI_TESTS) mpi-lib || echo "mpi-tests: the build failed" >&2
else
	@echo "MPI tests skipped: $(MPICC) or $(MPIRUN) missing (apt-get install libopenmpi-dev openmpi-bin)"
	@: > $(B)/mpi-tests.list
endif

# Tests link the objects directly (not the archive), so every kernel is in the link.
$(B)/test_%: test/test_%.c $(LIB_OBJ) $(HEADERS)
	$(CC) $(ALL_CFLAGS) -fvisibility=default $< $(LIB_OBJ) -o $@ $(LDLIBS)

# The command: cli/ and the demos in examples/. With MPI, `train --distributed` links the
# MPI communicator (the command initialises MPI only under --distributed).
cli: $(B)/tapegrad
$(CLI_OBJ): ALL_CFLAGS += $(if $(HAVE_MPI),-DTG_HAVE_MPI)
# Whether MPI was found, rewritten only when that changes: Open MPI installed by the deps
# step of this very run (seen by the recursive mpi-tests) rebuilds the command with it.
$(CLI_OBJ): $(B)/have-mpi
$(B)/have-mpi: FORCE
	@mkdir -p $(B); if [ ! -f $@ ] || [ "$$(cat $@)" != "$(HAVE_MPI)" ]; then echo "$(HAVE_MPI)" > $@; fi
$(B)/tapegrad: $(CLI_OBJ) $(DEMO_OBJ) $(LIB_OBJ) $(if $(HAVE_MPI),$(MPI_OBJ))
	$(CC) -o $@ $^ $(LDLIBS) $(if $(HAVE_MPI),$(MPI_LIBS))
# test/mpi_cli.c runs the command under mpirun.
$(B)/mpi_cli: test/mpi_cli.c test/run_cli.h $(B)/tapegrad $(LIB_OBJ) $(HEADERS)
	$(CC) $(ALL_CFLAGS) -fvisibility=default -DTG_CLI='"$(B)/tapegrad"' $< $(LIB_OBJ) -o $@ $(LDLIBS)

$(B)/obj/examples/%.o: examples/%.c $(HEADERS) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Icli -c $< -o $@

examples: $(EXAMPLES)
$(B)/examples/%: examples/%.c $(B)/libtapegrad.a $(B)/obj/cli/util.o $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Icli -DTG_EXAMPLE_MAIN $< -o $@ $(B)/obj/cli/util.o $(B)/libtapegrad.a $(LDLIBS)

# The main job: Fashion-MNIST comes from Debian's dataset-fashion-mnist package.
data-deps:
	@if [ ! -d $(FASHION) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Fashion-MNIST is missing: installing Debian's dataset-fashion-mnist"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null || exit 1; \
	  else \
	    echo "make run needs Fashion-MNIST: run 'sudo apt-get install dataset-fashion-mnist'." >&2; exit 1; \
	  fi; \
	fi

run: data-deps $(B)/tapegrad
	@mkdir -p $(B)/run
	$(B)/tapegrad train --data fashion-mnist --log $(B)/run/curves.csv --save $(B)/run/model.tg $(ARGS)

# Benchmarks (bench/): tapegrad and, when python3-torch is installed, PyTorch in one table;
# ADOL-C (Debian's libadolc-dev) on the 1-element chain, through a C++ helper program that
# bench runs, when it is installed or bench-deps can install it (else skipped with a note).
ADOLC_H := /usr/include/adolc/adolc.h
bench-deps:
	@if [ ! -f $(ADOLC_H) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "ADOL-C is missing: installing Debian's libadolc-dev"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libadolc-dev) >/dev/null \
	      || echo "bench-deps: could not install libadolc-dev; make bench skips ADOL-C" >&2; \
	  else \
	    echo "make bench compares with ADOL-C when it is installed: run 'sudo apt-get install libadolc-dev'." >&2; \
	  fi; \
	fi
# Plain -ladolc: Debian's adolc.pc also names a Boost library the package does not pull in.
# Without ADOL-C (or g++) the helper is not built and bench says it skipped ADOL-C.
$(B)/adolc_chain: bench/adolc_chain.cpp | bench-deps
	@mkdir -p $(B)
	@if [ -f $(ADOLC_H) ] && command -v $(CXX) >/dev/null 2>&1; then \
	  v=$$(dpkg-query -W -f='$${Version}' libadolc-dev 2>/dev/null || echo unknown); \
	  echo "$(CXX) -O3 -std=c++11 -DADOLC_PKG_VERSION='\"$$v\"' $< -o $@ -ladolc"; \
	  $(CXX) -O3 -std=c++11 -DADOLC_PKG_VERSION="\"$$v\"" $< -o $@ -ladolc || exit 1; \
	else rm -f $@; fi
bench: bench-deps $(B)/bench $(B)/tapegrad $(B)/adolc_chain data-deps $(if $(HAVE_MPI),$(B)/dist_bench)
	$(B)/bench --cli $(B)/tapegrad --adolc $(B)/adolc_chain $(if $(HAVE_MPI),--dist $(B)/dist_bench) --json $(B)/bench.json $(ARGS)
# The revision the bench reports ("-dirty" with uncommitted changes); the stamp file is
# rewritten only when it changes, so that the bench is rebuilt then.
GIT_REV := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
$(B)/git-rev: FORCE
	@mkdir -p $(B); if [ "$$(cat $@ 2>/dev/null)" != "$(GIT_REV)" ]; then echo "$(GIT_REV)" > $@; fi
FORCE:
$(B)/bench: bench/bench.c bench/chain.h $(LIB_OBJ) $(HEADERS) $(B)/git-rev
	$(CC) $(ALL_CFLAGS) -O3 -DTG_GIT_REV='"$(GIT_REV)"' $< $(LIB_OBJ) -o $@ $(LDLIBS)

# The command's test runs the binary.
$(B)/test_cli: test/test_cli.c $(B)/tapegrad test/check.h test/run_cli.h
	$(CC) $(ALL_CFLAGS) -DTG_CLI='"$(B)/tapegrad"' $< -o $@

test: $(TESTS)
	@$(MAKE) --no-print-directory mpi-tests
	@sh test/run.sh $(TESTS) $$(cat $(B)/mpi-tests.list)

asan:
	$(MAKE) --no-print-directory B=$(B)/asan OPT=-O1 \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" test

# ThreadSanitizer (GCC): TG_NO_CLONES, since the target_clones resolvers run at load, before
# TSan is up, and crash; OPENMP empty, since TSan cannot see libgomp's barriers and would
# flag every parallel loop (BLIS still runs its own threads, uninstrumented, and TSan is
# told to ignore what they do). test_optim's malloc replacement is off under TSan, which owns
# malloc.
tsan:
	TSAN_OPTIONS="ignore_noninstrumented_modules=1 $(TSAN_OPTIONS)" \
	$(MAKE) --no-print-directory B=$(B)/tsan OPT=-O1 OPENMP= \
	  EXTRA_CFLAGS="-fsanitize=thread -fno-omit-frame-pointer -DTG_NO_CLONES" \
	  EXTRA_LDFLAGS="-fsanitize=thread" test

valgrind: $(TESTS)
	@VALGRIND="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect --suppressions=test/valgrind.supp" \
	  sh test/run.sh $(TESTS)

install: lib $(B)/tapegrad
	install -d $(DESTDIR)$(PREFIX)/include/tapegrad $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/tapegrad.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/tapegrad/*.h $(DESTDIR)$(PREFIX)/include/tapegrad/
	install -m 644 $(B)/libtapegrad.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(B)/libtapegrad.so $(DESTDIR)$(PREFIX)/lib/
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(B)/tapegrad $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@BLIS_LIB@|$(BLIS_LIB)|' tapegrad.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tapegrad.pc
ifeq ($(HAVE_MPI),1)
	$(MAKE) --no-print-directory mpi-lib
	install -m 644 $(B)/libtapegrad_mpi.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(B)/libtapegrad_mpi.so $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@MPI_LIBS@|$(MPI_LIBS)|' tapegrad_mpi.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tapegrad_mpi.pc
endif

clean:
	rm -rf build

# Fuzzing the file readers with libFuzzer (clang; Debian's libclang-rt-14-dev provides it).
# FUZZ_TIME seconds per harness; corpora grow in build/fuzz/<name>/.
FUZZ_TIME ?= 60
FUZZ_SRC  := $(filter-out cli/%,$(LIB_SRC))
fuzz:
	@command -v clang >/dev/null || { echo "make fuzz needs clang: apt-get install clang libclang-rt-14-dev" >&2; exit 1; }
	@mkdir -p build/fuzz/idx build/fuzz/csv
	clang -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer,address,undefined -Iinclude \
	  -DTG_IDX_READ_STEP=16 -isystem $(BLIS_INC) test/fuzz_idx.c $(FUZZ_SRC) -o build/fuzz/fuzz_idx $(LDLIBS)
	clang -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer,address,undefined -Iinclude \
	  -isystem $(BLIS_INC) test/fuzz_csv.c $(FUZZ_SRC) -o build/fuzz/fuzz_csv $(LDLIBS)
	build/fuzz/fuzz_idx -max_total_time=$(FUZZ_TIME) -max_len=4096 build/fuzz/idx test/data/fuzz_idx
	build/fuzz/fuzz_csv -max_total_time=$(FUZZ_TIME) -max_len=4096 build/fuzz/csv test/data/fuzz_csv

# Formatting and lint. clang-format 14, clang-tidy 14 and cppcheck are Debian 12's
# (clang-format, clang-tidy, cppcheck); clang-tidy parses the OpenMP code with libomp-dev's
# omp.h. Installed here when missing and we are root with apt-get; otherwise one sentence
# says what to install.
CLANG_FORMAT ?= clang-format
CLANG_TIDY   ?= clang-tidy
CPPCHECK     ?= cppcheck
FMT_SRC      := $(wildcard include/*.h include/tapegrad/*.h autograd/*.[ch] ops/*.[ch] nn/*.[ch] \
                           optim/*.[ch] data/*.[ch] dist/*.[ch] cli/*.[ch] examples/*.[ch] test/*.[ch] \
                           bench/*.[ch])
# Every C file, with the flags of its build: examples/ as programs, test_cli with its binary.
LINT_SRC     := $(sort $(LIB_SRC) $(CLI_SRC) $(wildcard examples/*.c) $(TEST_SRC) \
                       $(wildcard test/fuzz_*.c) bench/bench.c bench/ulp_scan.c bench/step_time.c)
LINT_CFLAGS   = -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp -Iinclude -Icli -isystem $(BLIS_INC) \
                -DTG_EXAMPLE_MAIN -DTG_CLI='"$(B)/tapegrad"'
LINT_OK      := $(LINT_SRC:%.c=$(B)/lint/%.ok)
FMT_DEPS_OK  := $(B)/.format-deps-ok
LINT_DEPS_OK := $(B)/.lint-deps-ok

# $(call need,CHECK,PACKAGES,WHAT): when the shell command CHECK fails, installs Debian's
# PACKAGES as root with apt-get, or says which to install.
define need
	@if ! ( $(1) ) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "$(3) is missing: installing Debian's $(2)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2)) >/dev/null || exit 1; \
	  else \
	    echo "$(3) is missing: run 'sudo apt-get install $(2)'." >&2; exit 1; \
	  fi; \
	fi
endef

$(FMT_DEPS_OK):
	@mkdir -p $(B)
	$(call need,command -v $(CLANG_FORMAT),clang-format,clang-format)
	@touch $@

$(LINT_DEPS_OK):
	@mkdir -p $(B)/lint
	@printf '#include <omp.h>\n' > $(B)/lint/omp.c
	$(call need,command -v $(CLANG_TIDY) && command -v $(CPPCHECK),clang-tidy cppcheck,clang-tidy or cppcheck)
	$(call need,$(CLANG_TIDY) --quiet --checks=-* $(B)/lint/omp.c -- -fopenmp,libomp-dev,OpenMP's omp.h for clang)
	@touch $@

format: | $(FMT_DEPS_OK)
	@echo "$(CLANG_FORMAT) -i: $(words $(FMT_SRC)) files"
	@$(CLANG_FORMAT) -i $(FMT_SRC)

# Changes nothing; lists every place that differs from clang-format's output.
format-check: | $(FMT_DEPS_OK)
	@echo "$(CLANG_FORMAT) --dry-run --Werror: $(words $(FMT_SRC)) files"
	@$(CLANG_FORMAT) --dry-run --Werror $(FMT_SRC)

lint: lint-tidy lint-cppcheck
	@echo "lint: no findings"

# One clang-tidy run per file; its stamp is kept only when the file had no finding, so a
# second `make lint` checks only what changed since.
lint-tidy: $(LINT_OK)
$(B)/lint/%.ok: %.c .clang-tidy $(HEADERS) $(wildcard examples/*.h) | $(DEPS_OK) $(LINT_DEPS_OK)
	@mkdir -p $(dir $@)
	$(CLANG_TIDY) --quiet $< -- $(LINT_CFLAGS)
	@touch $@

lint-cppcheck: | $(LINT_DEPS_OK)
	$(CPPCHECK) --enable=warning,performance,portability --std=c11 --inline-suppr -q \
	  --error-exitcode=1 --suppressions-list=.cppcheck-suppressions -I include \
	  --template='{file}:{line}: {severity}: {message} [{id}]' \
	  autograd ops nn optim data dist cli examples test bench

# Every warning an error, under gcc and under clang (installed when missing, as root).
werror:
	$(MAKE) --no-print-directory B=build/werror EXTRA_CFLAGS=-Werror all
	$(call need,command -v clang,clang,clang)
	$(MAKE) --no-print-directory CC=clang B=build/clang EXTRA_CFLAGS=-Werror all
