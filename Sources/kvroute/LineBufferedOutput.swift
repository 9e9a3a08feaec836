// Only the C library here: its `stdout` is a C global, used before any task starts.
#if canImport(Darwin)
@preconcurrency import Darwin
#elseif canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Makes stdout line-buffered, as it is on a terminal, when it is a pipe or a file too: each
/// progress line reaches `kvroute demo > demo.log` when it is printed, not at exit.
func lineBufferStandardOutput() {
    setvbuf(stdout, nil, _IOLBF, 0)
}
