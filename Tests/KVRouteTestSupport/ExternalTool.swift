import Foundation

/// Real peers the end-to-end tests drive (Prometheus, promtool, the OpenAI Python client,
/// Envoy). The test command installs them; when one is missing, tests that need it are
/// skipped unless KVROUTE_REQUIRE_PEERS=1, which the test command sets so CI cannot pass
/// without them.
public enum ExternalTool {
    public static let repositoryRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }()

    static var searchPath: [String] {
        let env = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let local = [".tools/venv/bin", ".tools/bin"].map { repositoryRoot.appendingPathComponent($0).path }
        return local + env.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
    }

    /// Absolute path of an executable, if installed.
    public static func find(_ name: String) -> String? {
        for dir in searchPath {
            let p = (dir as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    public static var peersRequired: Bool { ProcessInfo.processInfo.environment["KVROUTE_REQUIRE_PEERS"] == "1" }

    /// True when the tool is there, or when peers are required (the test then fails loudly).
    public static func available(_ name: String) -> Bool { find(name) != nil || peersRequired }

    /// Python with the `openai` package importable.
    public static let pythonWithOpenAI: String? = {
        for dir in searchPath {
            for name in ["python3", "python"] {
                let py = (dir as NSString).appendingPathComponent(name)
                guard FileManager.default.isExecutableFile(atPath: py) else { continue }
                if let r = try? run(py, ["-c", "import openai"], timeout: 60), r.status == 0 { return py }
            }
        }
        return nil
    }()

    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    public struct Missing: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// Runs a program to completion (killed after `timeout` seconds).
    public static func run(_ path: String, _ args: [String], stdin: String? = nil, timeout: Double = 120, environment: [String: String]? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { _, n in n } }
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? inp.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(timeout)
        // Drain pipes concurrently so a chatty child never blocks on a full pipe.
        let outData = LockedData(), errData = LockedData()
        let g = DispatchGroup()
        for (h, sink) in [(out.fileHandleForReading, outData), (err.fileHandleForReading, errData)] {
            g.enter()
            DispatchQueue.global().async { sink.set(h.readDataToEndOfFile()); g.leave() }
        }
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        g.wait()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData.get(), as: UTF8.self), stderr: String(decoding: errData.get(), as: UTF8.self))
    }

    /// Async wrapper so callers can keep serving HTTP while the child runs.
    public static func runAsync(_ path: String, _ args: [String], stdin: String? = nil, timeout: Double = 120, environment: [String: String]? = nil) async throws -> Result {
        try await withCheckedThrowingContinuation { c in
            DispatchQueue.global().async {
                c.resume(with: Swift.Result { try run(path, args, stdin: stdin, timeout: timeout, environment: environment) })
            }
        }
    }

    public static func require(_ name: String) throws -> String {
        guard let p = find(name) else { throw Missing(description: "\(name) is not installed; run scripts/test.sh, which installs it") }
        return p
    }
}

final class LockedData: @unchecked Sendable {
    private var data = Data()
    private let lock = NSLock()
    func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}

/// A background child process (a server) stopped when the value is closed.
public final class BackgroundProcess: @unchecked Sendable {
    public let process = Process()
    public let logURL: URL

    public init(_ path: String, _ args: [String], name: String) throws {
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("kvroute-\(name)-\(UUID().uuidString.prefix(8)).log")
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let h = try FileHandle(forWritingTo: logURL)
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = args
        process.standardOutput = h
        process.standardError = h
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// Waits until something accepts connections on the loopback port (up to 10 s).
public func waitForPort(_ port: Int) async throws {
    for _ in 0..<200 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        close(fd)
        if ok { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw ExternalTool.Missing(description: "nothing listens on port \(port)")
}

/// A free TCP port on loopback (bound and released; good enough for tests).
public func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}
