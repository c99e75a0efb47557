"""Build of the optional C extensions: the chain loop and the C device library.

Both are optional: where no C compiler is available the package still
installs, paygkit.token runs on its pure-Python engine and the simulator on
the Python firmware model.
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

WARNINGS = ["-Wall", "-Wextra"]
FIRMWARE_LIBRARY = "firmware/lib"
FIRMWARE_SOURCES = [
    f"{FIRMWARE_LIBRARY}/{name}.c"
    for name in ("pgk_device", "pgk_token", "pgk_siphash", "pgk_storage")
]
# The options that make the C device library behave exactly as paygkit's Firmware with its
# default DeviceConfig (tests/firmware builds its comparison harness the same way): every token
# form, any 64-bit RTC time, memory rewritten in place.  The protocol stays in Python
# (paygkit.device.interpreter), so the library's is left out.
FIRMWARE_DEFINES = [
    ("PGK_WITH_RESTRICTED", "1"),
    ("PGK_WITH_EXTENDED", "1"),
    ("PGK_RTC_32BIT", "0"),
    ("PGK_NV_NEEDS_ERASE", "0"),
    ("PGK_WITH_PROTOCOL", "0"),
]


def firmware_extension(name: str, accept_reset_token: int) -> Extension:
    # The reset token is a compile-time option of the library, so a workshop build
    # (DeviceConfig(accept_reset_token=True)) is a second copy of it.
    return Extension(
        f"paygkit.device.{name}",
        sources=["src/paygkit/device/_cfirmware.c", *FIRMWARE_SOURCES],
        include_dirs=[FIRMWARE_LIBRARY],
        define_macros=[*FIRMWARE_DEFINES, ("PGK_ACCEPT_RESET_TOKEN", str(accept_reset_token))],
        extra_compile_args=["-O2", "-std=gnu11", *WARNINGS, "-fvisibility=hidden"],
        optional=True,
    )


class BuildExtensions(build_ext):
    def build_extension(self, ext: Extension) -> None:
        # Both firmware builds compile the same library sources with other options: each
        # keeps its own object files, or one could link the other's.
        shared = self.build_temp
        self.build_temp = os.path.join(shared, ext.name)
        try:
            super().build_extension(ext)
        finally:
            self.build_temp = shared


setup(
    cmdclass={"build_ext": BuildExtensions},
    ext_modules=[
        Extension(
            "paygkit.token._chain",
            sources=["src/paygkit/token/_chain.c"],
            extra_compile_args=["-O3", "-std=gnu11", *WARNINGS, "-Wno-unused-parameter"],
            optional=True,
        ),
        firmware_extension("_cfirmware", 0),
        firmware_extension("_cfirmware_workshop", 1),
    ],
)
