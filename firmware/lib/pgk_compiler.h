/* Hints to the compiler, used inside the library only.  Where GCC's -Os
 * inlining guess is wrong for this code, either way: each use says by how
 * much, measured with `make -C firmware library-size`. */
#ifndef PGK_COMPILER_H
#define PGK_COMPILER_H

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#define INLINE __attribute__((always_inline)) inline
#else
#define NOINLINE
#define INLINE inline
#endif

#endif /* PGK_COMPILER_H */
