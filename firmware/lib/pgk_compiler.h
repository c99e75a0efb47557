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

/* Keeps a function's signature as written: GCC's IPA-SRA would pass the
 * fields it reads instead of the pointer, which its callers then load and
 * pass one by one, when they hold the pointer anyway. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8
#define KEEP_SIGNATURE __attribute__((noipa))
#else
#define KEEP_SIGNATURE
#endif

#endif /* PGK_COMPILER_H */
