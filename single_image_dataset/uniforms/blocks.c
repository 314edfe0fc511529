/*
 * The fixed blocks of many streams that differ in one word of their entropy (see uniforms.h): the
 * uniforms of a batch of views, one stream per (sample, view).
 */

#include "uniforms.h"

void sid_stream_blocks(const sid_blocks *b) {
    uint64_t entropy[SID_MAX_ENTROPY];
    int index_at = b->prefix_len, count = b->prefix_len + 1 + b->suffix_len;
    for (int i = 0; i < b->prefix_len; i++) entropy[i] = b->prefix[i];
    for (int i = 0; i < b->suffix_len; i++) entropy[index_at + 1 + i] = b->suffix[i];
    for (ptrdiff_t k = 0; k < b->count; k++) {
        entropy[index_at] = (uint64_t)b->indices[k];
        sid_pcg64 rng;
        sid_seed_stream(&rng, entropy, count);
        double *row = b->out + k * b->block;
        for (ptrdiff_t j = 0; j < b->block; j++) row[j] = sid_next_double(&rng);
    }
}
