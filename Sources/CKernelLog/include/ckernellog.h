#ifndef CKERNELLOG_H
#define CKERNELLOG_H

#include <stddef.h>
#include <stdint.h>

// Teddy (Hyperscan's many-needle filter) over a needle set's first four bytes, with x86's
// byte shuffle: 32 positions per step (one AVX2 register or two SSSE3 ones) where the scalar
// search hashes four windows per 12 bytes. `masks` holds, for needle byte j (0-3), 16 bytes
// indexed by a byte's low nibble then 16 by its high nibble; bit b of an entry says a needle
// of bucket b may have that nibble there. A position is a candidate when some bucket's bit
// survives all eight lookups; the caller verifies it.

/// What this CPU has: 2 AVX2, 1 SSSE3, 0 neither (then the caller keeps its own search).
int ckernellog_teddy_level(void);

/// The first block of 32 positions from `from` holding a candidate start (in [from, to - 4]),
/// or -1: bit k of `hits` set for a candidate at the result + k. The next block starts at
/// the result + 32.
ptrdiff_t ckernellog_teddy_next(const uint8_t *base, ptrdiff_t from, ptrdiff_t to,
                                const uint8_t masks[128], uint32_t *hits);

/// The same with the form of `level` (at most the CPU's): tests compare the three.
ptrdiff_t ckernellog_teddy_next_using(int level, const uint8_t *base, ptrdiff_t from,
                                      ptrdiff_t to, const uint8_t masks[128], uint32_t *hits);

#endif
