"""cffi API-mode builder for vrangeemu._native (run by setup.py at install).

Compiles vrnative.c, fastpath.c and follow.c (this directory, native/ext/); the cdef is
vrnative.h, which both include."""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

# The kernel's structs, declared for cffi; the C compiler checks them
# against <linux/seccomp.h> when the module is built.
KERNEL_CDEF = """
struct seccomp_data {
    int nr;
    uint32_t arch;
    unsigned long long instruction_pointer;
    unsigned long long args[6];
};
struct seccomp_notif {
    uint64_t id;
    uint32_t pid;
    uint32_t flags;
    struct seccomp_data data;
};
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE ...
"""

ffibuilder = FFI()
with open(os.path.join(HERE, "vrnative.h")) as header:
    ffibuilder.cdef(KERNEL_CDEF + header.read())
ffibuilder.set_source(
    "vrangeemu._native",
    '#include <stdint.h>\n#include <linux/seccomp.h>\n#include "vrnative.h"\n',
    sources=[os.path.relpath(os.path.join(HERE, name)) for name in ("vrnative.c", "fastpath.c", "follow.c", "region.c")],
    include_dirs=[os.path.relpath(HERE)],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
