import Foundation

/// The built `kvroute` executable, for tests that run the real processes.
///
/// The test command (`swift build --build-tests`) always builds it, so a test that needs it
/// calls ``require()`` and fails, naming where it looked, when it is not there: a missing
/// binary never turns into a skipped (passing) test.
public enum KVRouteBinary {
    /// Where the binary may be, in order: KVROUTE_BINARY (run the tests against another
    /// build), next to the test runner (`swift build` puts both in one folder), .build/debug.
    public static var candidates: [String] {
        var out: [String] = []
        if let path = ProcessInfo.processInfo.environment["KVROUTE_BINARY"] { return [path] }
        let runner = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        out.append(runner.deletingLastPathComponent().appendingPathComponent("kvroute").path)
        out.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kvroute").path)
        out += [".build", ".build-epp"].map { ExternalTool.repositoryRoot.appendingPathComponent("\($0)/debug/kvroute").path }
        return out
    }

    /// The first candidate that is an executable file, if any.
    public static var path: String? {
        candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// The binary's path, or an error naming every place looked at.
    public static func require() throws -> String {
        guard let path else {
            throw ExternalTool.Missing(description: "kvroute is not built (looked at \(candidates.joined(separator: ", "))); run swift build")
        }
        return path
    }
}

/// One `kvroute` subcommand (or any server) as a child process that a test can kill hard,
/// restart with the same arguments, and always stops at the end.
public final class ManagedProcess: @unchecked Sendable {
    public let name: String
    public let executable: String
    public let arguments: [String]
    /// Variables added to the test runner's environment.
    public let environment: [String: String]
    private let lock = NSLock()
    private var current: Process
    private var logs: [URL] = []

    public init(_ executable: String, _ arguments: [String], name: String, environment: [String: String] = [:]) throws {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        current = Process()
        current = try launch()
    }

    /// `kvroute ARGS`.
    public convenience init(kvroute arguments: [String], name: String, environment: [String: String] = [:]) throws {
        try self.init(try KVRouteBinary.require(), arguments, name: name, environment: environment)
    }

    private func launch() throws -> Process {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-\(name)-\(UUID().uuidString.prefix(8)).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new } }
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        try? handle.close()
        logs.append(log)
        return p
    }

    public var process: Process { lock.withLock { current } }
    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    /// How the last run ended (meaningful once it is not running).
    public var exitDescription: String {
        let p = process
        return p.isRunning ? "running" : "exited \(p.terminationReason == .uncaughtSignal ? "by signal" : "with status") \(p.terminationStatus)"
    }

    /// The output of every run so far.
    public var log: String {
        lock.withLock { logs }.map { (try? String(contentsOf: $0, encoding: .utf8)) ?? "" }.joined(separator: "\n--- restarted ---\n")
    }

    /// Kills the process at once (a crashed pod).
    public func kill() {
        let p = process
        guard p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// Starts it again with the same arguments (killing a running one first).
    public func restart() throws {
        kill()
        let p = try launch()
        lock.withLock { current = p }
    }

    /// SIGTERM, then SIGKILL when it has not exited within `grace` seconds.
    public func stop(grace: Double = 5) {
        let p = process
        guard p.isRunning else { return }
        p.terminate()
        let deadline = Date().addingTimeInterval(grace)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { Foundation.kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
    }

    /// Removes the log files.
    public func removeLogs() {
        for url in lock.withLock({ logs }) { try? FileManager.default.removeItem(at: url) }
    }

    deinit {
        stop(grace: 1)
        removeLogs()
    }
}

/// Polls `url` until it answers 200 (up to `timeout` seconds).
public func waitForOK(_ url: String, timeout: Double = 15, process: ManagedProcess? = nil) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if let r = try? await TestHTTP.request(url, contentType: nil, timeout: .seconds(2)), r.status == 200 { return }
        if let process, !process.isRunning {
            throw ExternalTool.Missing(description: "\(process.name) \(process.exitDescription): \(process.log.suffix(2000))")
        }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw ExternalTool.Missing(description: "\(url) did not answer 200 within \(timeout) s: \(process?.log.suffix(2000) ?? "")")
}
