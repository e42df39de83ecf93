/*
 * XXH3_128bits_digest returns its 128-bit result as a struct in two registers, which bun:ffi cannot
 * receive; this shim, compiled at run time by bun:ffi's cc (TinyCC) against the system libxxhash,
 * writes it as big-endian canonical bytes (what xxhsum prints) into a 16-byte buffer instead.
 */
#include <stdint.h>

typedef struct { uint64_t low64; uint64_t high64; } XXH128_hash_t;
typedef struct XXH3_state_s XXH3_state_t;
extern XXH128_hash_t XXH3_128bits_digest(const XXH3_state_t* state);

void ketter_xxh128_digest(const XXH3_state_t* state, uint8_t* out) {
  XXH128_hash_t h = XXH3_128bits_digest(state);
  for (int i = 0; i < 8; i++) {
    out[i] = (uint8_t)(h.high64 >> (56 - 8 * i));
    out[8 + i] = (uint8_t)(h.low64 >> (56 - 8 * i));
  }
}
