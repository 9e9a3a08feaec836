import Logging
import ServiceLifecycle
import Synchronization

/// A command's servers as one ServiceGroup that stops gracefully on SIGTERM or SIGINT, run in
/// the background so the command can wait for the servers to listen, or for the group to end,
/// whichever comes first. A port that cannot be taken ends the group with an error; waiting
/// for a listener alone would then wait forever.
final class ServerGroup: Sendable {
    private let group: ServiceGroup
    private let task: Task<Void, any Error>
    private let end: GroupEnd

    /// `stopsOnSignals`: SIGTERM and SIGINT stop the group gracefully; without, only ``stop()`` does.
    init(_ services: [any Service], logger: Logger, stopsOnSignals: Bool = true) {
        // A service that fails (a server that cannot listen) shuts the others down gracefully,
        // as a signal would, rather than cancelling them mid-flight.
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0, failureTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: stopsOnSignals ? [.sigterm, .sigint] : [], logger: logger))
        let end = GroupEnd()
        self.group = group
        self.end = end
        task = Task {
            defer { end.reached() }
            try await group.run()
        }
    }

    /// Waits until `listening` returns (the servers' bound ports), unless the group ends first:
    /// then throws the group's error, or returns nil when a signal stopped it cleanly.
    func untilListening<T: Sendable>(_ listening: @escaping @Sendable () async -> T) async throws -> T? {
        let first = await withTaskGroup(of: StartupOutcome<T>.self) { race in
            race.addTask { .listening(await listening()) }
            race.addTask {
                await self.end.wait()
                return .ended
            }
            let first = await race.next()!
            race.cancelAll()
            return first
        }
        switch first {
        case .listening(let value):
            return value
        case .ended:
            try await task.value
            return nil
        }
    }

    /// Waits until the group ends: a signal, or a service's error (rethrown).
    func wait() async throws {
        try await task.value
    }

    /// Stops the servers gracefully (in-flight requests finish) and waits for them.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

private enum StartupOutcome<T: Sendable>: Sendable {
    case listening(T)
    case ended
}

/// The moment a group's run ended, awaited by any number of tasks; a waiting task that is
/// cancelled stops waiting.
private final class GroupEnd: Sendable {
    private struct State {
        var ended = false
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    func reached() {
        let waiters = state.withLock { s in
            s.ended = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume() }
    }

    func wait() async {
        let id = state.withLock { s in
            defer { s.nextID += 1 }
            return s.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s in
                    if s.ended || Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }
}
