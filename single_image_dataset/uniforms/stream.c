/*
 * numpy's SeedSequence, and PCG64 seeded from it (see uniforms.h).
 */

#include "uniforms.h"

#define POOL_SIZE 4
#define MAX_WORDS (2 * SID_MAX_ENTROPY) /* integers of up to 64 bits */

static const uint32_t INIT_A = 0x43b0d7e5u, MULT_A = 0x931e8875u, INIT_B = 0x8b51f9ddu, MULT_B = 0x58f38dedu,
                      MIX_MULT_L = 0xca01f9ddu, MIX_MULT_R = 0x4973f715u;
#define XSHIFT 16

static uint32_t hashmix(uint32_t value, uint32_t *hash_const) {
    value ^= *hash_const;
    *hash_const *= MULT_A;
    value *= *hash_const;
    return value ^ (value >> XSHIFT);
}

static uint32_t mix(uint32_t x, uint32_t y) {
    uint32_t result = MIX_MULT_L * x - MIX_MULT_R * y;
    return result ^ (result >> XSHIFT);
}

/* The pool of SeedSequence(entropy) from its entropy as 32-bit words (no spawn key). */
static void mix_entropy(uint32_t pool[POOL_SIZE], const uint32_t *words, int count) {
    uint32_t hash_const = INIT_A;
    for (int i = 0; i < POOL_SIZE; i++) pool[i] = hashmix(i < count ? words[i] : 0u, &hash_const);
    for (int src = 0; src < POOL_SIZE; src++)
        for (int dst = 0; dst < POOL_SIZE; dst++)
            if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src], &hash_const));
    for (int src = POOL_SIZE; src < count; src++)
        for (int dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst], hashmix(words[src], &hash_const));
}

/* SeedSequence.generate_state(4, uint64): eight 32-bit words, paired low word first. */
static void generate_state(const uint32_t pool[POOL_SIZE], uint64_t out[4]) {
    uint32_t hash_const = INIT_B, words[8];
    for (int i = 0; i < 8; i++) {
        uint32_t value = pool[i % POOL_SIZE] ^ hash_const;
        hash_const *= MULT_B;
        value *= hash_const;
        words[i] = value ^ (value >> XSHIFT);
    }
    for (int i = 0; i < 4; i++) out[i] = (uint64_t)words[2 * i] | (uint64_t)words[2 * i + 1] << 32;
}

/* numpy's PCG64(seed_sequence): initial state from words 0-1, stream from words 2-3 (high word first). */
static void pcg64_seed(sid_pcg64 *rng, const uint64_t words[4]) {
    sid_u128 initstate = (sid_u128)words[0] << 64 | words[1], initseq = (sid_u128)words[2] << 64 | words[3];
    rng->state = 0;
    rng->inc = (initseq << 1) | 1;
    sid_pcg64_step(rng);
    rng->state += initstate;
    sid_pcg64_step(rng);
}

/* numpy's words of each integer (32 bits at a time, least significant first; 0 is one word), mixed
 * into the pool, expanded into PCG64's seed. */
void sid_seed_stream(sid_pcg64 *rng, const uint64_t *entropy, int count) {
    uint32_t words[MAX_WORDS], pool[POOL_SIZE];
    uint64_t state[4];
    int nwords = 0;
    for (int i = 0; i < count; i++) {
        words[nwords++] = (uint32_t)entropy[i];
        if (entropy[i] >> 32) words[nwords++] = (uint32_t)(entropy[i] >> 32);
    }
    mix_entropy(pool, words, nwords);
    generate_state(pool, state);
    pcg64_seed(rng, state);
}
