import ServiceLifecycle

/// Runs `body` at the start of every `interval` until graceful shutdown (or cancellation).
/// Shutdown also cuts the wait between two runs short, so a Service built on it stops at
/// once instead of after its interval. One round that overruns the interval is followed by
/// the next at once.
public func runPeriodically(every interval: Duration, _ body: @escaping @Sendable () async -> Void) async {
    await runPeriodically(every: { interval }, body)
}

/// Like ``runPeriodically(every:_:)-(Duration,_)``, with the interval chosen again after
/// every run (a loop that slows down while its process is idle).
public func runPeriodically(every interval: @escaping @Sendable () -> Duration, _ body: @escaping @Sendable () async -> Void) async {
    try? await cancelWhenGracefulShutdown {
        while !Task.isCancelled {
            let started = ContinuousClock.now
            await body()
            do { try await Task.sleep(until: started + interval(), clock: .continuous) } catch { return }
        }
    }
}
