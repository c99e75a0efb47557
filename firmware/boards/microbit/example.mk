# The example firmware (example.c): the device library serving the device protocol on
# UART0, included by firmware/Makefile.
#
#   make -C firmware example       build/microbit/example/example.elf, the product build
#   make -C firmware example-sim   build/microbit/example-sim/example.elf, the test build:
#                                  the simulator commands move its clocks (certification),
#                                  extended tokens on (certification's EX cases)
#
# Each build has its own objects: the library is compiled with the build's options.  The
# product build is the reference product of firmware/Makefile with its protocol as a product
# ships it (PRODUCT_CFLAGS: answer codes and fields, no message texts); the test build speaks
# the same protocol, so that make firmware-certify certifies that protocol build.
EXAMPLE_LIB := pgk_token pgk_siphash pgk_storage pgk_device pgk_wire pgk_protocol
EXAMPLE_BOARD := startup board pgk_port_microbit example
EXAMPLE_CFLAGS_example := $(PRODUCT_CFLAGS)
EXAMPLE_CFLAGS_example-sim := $(PRODUCT_PROTOCOL) -DPGK_WITH_SIM_CONTROLS=1 -DPGK_WITH_EXTENDED=1

# $(1): the build's name; its options are EXAMPLE_CFLAGS_$(1).
define example_build
$(OUT)/$(1)/%.o: $(LIB_DIR)/%.c $(OUT)/$(1)/cflags | $(OUT)/$(1)
	$$(CC) $$(CFLAGS) -Werror $$(EXAMPLE_CFLAGS_$(1)) -c $$< -o $$@
$(OUT)/$(1)/%.o: $(BOARD_DIR)/%.c $(OUT)/$(1)/cflags | $(OUT)/$(1)
	$$(CC) $$(CFLAGS) -Werror $$(EXAMPLE_CFLAGS_$(1)) -c $$< -o $$@
$(eval $(call cflags_stamp,$(OUT)/$(1)/cflags,$$(CFLAGS) $$(EXAMPLE_CFLAGS_$(1))))
$(OUT)/$(1):
	mkdir -p $$@
$(OUT)/$(1)/example.elf: $(foreach o,$(EXAMPLE_BOARD) $(EXAMPLE_LIB),$(OUT)/$(1)/$(o).o) \
		$(BOARD_DIR)/$(BOARD).ld
	$$(CC) $$(LDFLAGS) -Wl,-Map=$$(@:.elf=.map) \
		$(foreach o,$(EXAMPLE_BOARD) $(EXAMPLE_LIB),$(OUT)/$(1)/$(o).o) $$(LDLIBS) -o $$@
.PHONY: $(1)
$(1): $(OUT)/$(1)/example.elf
-include $(OUT)/$(1)/*.d
endef
$(eval $(call example_build,example))
$(eval $(call example_build,example-sim))

# The product build's flash and RAM, board code included (make firmware-size prints it
# before the library's budgets).
.PHONY: example-size
example-size: $(OUT)/example/example.elf
	$(PYTHON) ../scripts/firmware_size.py --cross $(CROSS) $(INDIRECT_CALLS) \
		$(OUT)/example/example.elf
