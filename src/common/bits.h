/* The bits of an fp32 value and back (memcpy: no aliasing games; one move instruction). */
#ifndef FASI_BITS_H
#define FASI_BITS_H

#include <stdint.h>
#include <string.h>

static inline float fasi_bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t fasi_float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

#endif
