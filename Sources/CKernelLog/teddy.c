#include "ckernellog.h"

// One form of the filter (AVX2, SSSE3 or scalar): `ckernellog_teddy_next`'s contract.
typedef ptrdiff_t (*teddy_form)(const uint8_t *base, ptrdiff_t from, ptrdiff_t to,
                                const uint8_t *masks, uint32_t *hits);

// The scalar form of the same test: the tail of a range, and CPUs without the shuffle. The
// first 32 positions from the first candidate on.
static ptrdiff_t teddy_scalar(const uint8_t *base, ptrdiff_t i, ptrdiff_t to,
                              const uint8_t *masks, uint32_t *hits) {
  ptrdiff_t block = -1;
  *hits = 0;
  for (; i + 4 <= to && (block < 0 || i < block + 32); i++) {
    uint8_t bits = 0xff;
    for (int j = 0; j < 4; j++) {
      uint8_t c = base[i + j];
      bits &= masks[32 * j + (c & 15)] & masks[32 * j + 16 + (c >> 4)];
    }
    if (bits == 0) continue;
    if (block < 0) block = i;
    *hits |= (uint32_t)1 << (i - block);
  }
  return block;
}

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2"))) static ptrdiff_t teddy_avx2(const uint8_t *base, ptrdiff_t i,
                                                             ptrdiff_t to,
                                                             const uint8_t *masks,
                                                             uint32_t *hits) {
  __m256i lo[4], hi[4];
  for (int j = 0; j < 4; j++) {
    lo[j] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(masks + 32 * j)));
    hi[j] =
        _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(masks + 32 * j + 16)));
  }
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  const __m256i zero = _mm256_setzero_si256();
  // Positions i ... i + 31 need bytes up to i + 34; the last block ends at `to` and overlaps
  // the one before it (positions already tested masked off), so no position is left to a
  // scalar loop.
  ptrdiff_t end = to - 35;
  while (i <= end + 31 && end >= 0) {
    ptrdiff_t at = i <= end ? i : end;
    __m256i bits = _mm256_set1_epi8((char)0xff);
    for (int j = 0; j < 4; j++) {
      __m256i v = _mm256_loadu_si256((const __m256i *)(base + at + j));
      __m256i l = _mm256_and_si256(v, nibble);
      __m256i h = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
      bits = _mm256_and_si256(bits, _mm256_and_si256(_mm256_shuffle_epi8(lo[j], l),
                                                      _mm256_shuffle_epi8(hi[j], h)));
    }
    uint32_t found = ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(bits, zero));
    found &= ~(uint32_t)0 << (i - at);
    if (found != 0) {
      *hits = found;
      return at;
    }
    i = at + 32;
  }
  return teddy_scalar(base, i, to, masks, hits);
}

__attribute__((target("ssse3"))) static ptrdiff_t teddy_ssse3(const uint8_t *base,
                                                               ptrdiff_t i, ptrdiff_t to,
                                                               const uint8_t *masks,
                                                               uint32_t *hits) {
  __m128i lo[4], hi[4];
  for (int j = 0; j < 4; j++) {
    lo[j] = _mm_loadu_si128((const __m128i *)(masks + 32 * j));
    hi[j] = _mm_loadu_si128((const __m128i *)(masks + 32 * j + 16));
  }
  const __m128i nibble = _mm_set1_epi8(0x0f);
  const __m128i zero = _mm_setzero_si128();
  // Two halves of 16 positions, so that a block is 32 positions as with AVX2; the last one
  // ends at `to` as there.
  ptrdiff_t end = to - 35;
  while (i <= end + 31 && end >= 0) {
    ptrdiff_t at = i <= end ? i : end;
    uint32_t found = 0;
    for (int half = 0; half < 2; half++) {
      __m128i bits = _mm_set1_epi8((char)0xff);
      for (int j = 0; j < 4; j++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(base + at + 16 * half + j));
        __m128i l = _mm_and_si128(v, nibble);
        __m128i h = _mm_and_si128(_mm_srli_epi16(v, 4), nibble);
        bits = _mm_and_si128(bits, _mm_and_si128(_mm_shuffle_epi8(lo[j], l),
                                                 _mm_shuffle_epi8(hi[j], h)));
      }
      found |= (0xffffu & ~(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(bits, zero)))
               << (16 * half);
    }
    found &= ~(uint32_t)0 << (i - at);
    if (found != 0) {
      *hits = found;
      return at;
    }
    i = at + 32;
  }
  return teddy_scalar(base, i, to, masks, hits);
}

static int teddy_level(void) {
  // 2 AVX2, 1 SSSE3, 0 neither; racing first calls compute the same value.
  static int level = -1;
  int l = __atomic_load_n(&level, __ATOMIC_RELAXED);
  if (l < 0) {
    __builtin_cpu_init();
    l = __builtin_cpu_supports("avx2") ? 2 : __builtin_cpu_supports("ssse3") ? 1 : 0;
    __atomic_store_n(&level, l, __ATOMIC_RELAXED);
  }
  return l;
}

static teddy_form teddy_form_of(int level) {
  return level >= 2 ? teddy_avx2 : level == 1 ? teddy_ssse3 : teddy_scalar;
}

#else

static int teddy_level(void) { return 0; }

static teddy_form teddy_form_of(int level) { return teddy_scalar; }

#endif

int ckernellog_teddy_level(void) { return teddy_level(); }

ptrdiff_t ckernellog_teddy_next_using(int level, const uint8_t *base, ptrdiff_t from,
                                      ptrdiff_t to, const uint8_t masks[128], uint32_t *hits) {
  int cpu = teddy_level();
  return teddy_form_of(level < cpu ? level : cpu)(base, from, to, masks, hits);
}

ptrdiff_t ckernellog_teddy_next(const uint8_t *base, ptrdiff_t from, ptrdiff_t to,
                                const uint8_t masks[128], uint32_t *hits) {
  // The CPU's form, chosen once: this is called for every candidate block.
  static teddy_form form;
  teddy_form f = __atomic_load_n(&form, __ATOMIC_RELAXED);
  if (f == NULL) {
    f = teddy_form_of(teddy_level());
    __atomic_store_n(&form, f, __ATOMIC_RELAXED);
  }
  return f(base, from, to, masks, hits);
}
