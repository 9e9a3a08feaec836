#pragma once
#include <stddef.h>
#if defined(__linux__)
#include <malloc.h>
#endif
#if defined(__GLIBC__)
/// Bytes glibc's allocator has handed out and not taken back: in-use heap blocks plus
/// mmap'd blocks, over every arena.
static inline size_t kvroute_allocated_bytes(void) {
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}
#else
static inline size_t kvroute_allocated_bytes(void) { return 0; }
#endif
