# The token decode benchmark (decode_bench.c), included by firmware/Makefile.
#
#   make -C firmware decode-bench-elf  build/microbit/decode-bench/decode_bench.elf
#   make -C firmware decode-bench      build it, run it in QEMU with -icount shift=0
#                                      (one instruction per guest nanosecond) and print
#                                      hash steps, instructions and M0 cycle estimates
#                                      per worst-case token (scripts/firmware_decode_time.py)
#
# The library is built as the size probes' reference product build decodes (restricted
# digits in, extended tokens out), so the figures are for the code a product ships.
DECODE_BENCH_LIB := pgk_token pgk_siphash
DECODE_BENCH_BOARD := startup board decode_bench
DECODE_BENCH_CFLAGS := -DPGK_WITH_RESTRICTED=1 -DPGK_WITH_EXTENDED=0
DECODE_BENCH_OUT := $(OUT)/decode-bench
DECODE_BENCH_OBJS := $(foreach o,$(DECODE_BENCH_BOARD) $(DECODE_BENCH_LIB),$(DECODE_BENCH_OUT)/$(o).o)
DECODE_BENCH_ELF := $(DECODE_BENCH_OUT)/decode_bench.elf

$(DECODE_BENCH_OUT)/%.o: $(LIB_DIR)/%.c | $(DECODE_BENCH_OUT)
	$(CC) $(CFLAGS) -Werror $(DECODE_BENCH_CFLAGS) -c $< -o $@
$(DECODE_BENCH_OUT)/%.o: $(BOARD_DIR)/%.c | $(DECODE_BENCH_OUT)
	$(CC) $(CFLAGS) -Werror $(DECODE_BENCH_CFLAGS) -c $< -o $@
$(DECODE_BENCH_OUT):
	mkdir -p $@
# --wrap: the bench counts the decoder's calls of pgk_siphash24 (its hash steps).
$(DECODE_BENCH_ELF): $(DECODE_BENCH_OBJS) $(BOARD_DIR)/$(BOARD).ld
	$(CC) $(LDFLAGS) -Wl,--wrap=pgk_siphash24 -Wl,-Map=$(@:.elf=.map) $(DECODE_BENCH_OBJS) \
		$(LDLIBS) -o $@

# The script needs the project's Python (its QEMU runner imports pytest): the venv's unless
# PYTHON is given.
DECODE_BENCH_PYTHON := $(if $(filter command line environment,$(origin PYTHON)),$(PYTHON),$(or \
	$(wildcard ../.venv/bin/python),$(PYTHON)))

.PHONY: decode-bench-elf decode-bench
decode-bench-elf: $(DECODE_BENCH_ELF)
decode-bench: $(DECODE_BENCH_ELF)
	$(DECODE_BENCH_PYTHON) ../scripts/firmware_decode_time.py --build $(abspath $(BUILD)) --cross $(CROSS)
-include $(DECODE_BENCH_OUT)/*.d
