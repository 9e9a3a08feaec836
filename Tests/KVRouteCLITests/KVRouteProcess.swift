import Foundation
import KVRouteTestSupport

/// The built `kvroute` binary running as a real process, its stdout and stderr read through
/// pipes as they are written. The process is killed when the value is released.
final class KVRouteProcess: @unchecked Sendable {
    let process = Process()
    private let lock = NSLock()
    private var outData = Data()
    private var errData = Data()

    /// Fails (throws) when kvroute is not built: these tests never skip.
    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try KVRouteBinary.require())
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        for (pipe, isOut) in [(out, true), (err, false)] {
            pipe.fileHandleForReading.readabilityHandler = { [weak self] h in
                let chunk = h.availableData
                if chunk.isEmpty { h.readabilityHandler = nil; return }
                guard let self else { return }
                self.lock.lock()
                if isOut { self.outData.append(chunk) } else { self.errData.append(chunk) }
                self.lock.unlock()
            }
        }
        try process.run()
    }

    var stdout: String { lock.lock(); defer { lock.unlock() }; return String(decoding: outData, as: UTF8.self) }
    var stderr: String { lock.lock(); defer { lock.unlock() }; return String(decoding: errData, as: UTF8.self) }
    var output: String { "stdout:\n\(stdout.suffix(3000))\nstderr:\n\(stderr.suffix(3000))" }

    /// Waits up to `timeout` for a stdout line containing `text`; the line, or nil.
    func line(containing text: String, timeout: Duration) async throws -> String? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = stdout.split(separator: "\n").first(where: { $0.contains(text) }) { return String(line) }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Waits up to `timeout` for the process to exit; its exit status, or nil when it still runs
    /// (or was ended by a signal it did not handle).
    func exitStatus(within timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        guard !process.isRunning else { return nil }
        return process.terminationReason == .exit ? process.terminationStatus : nil
    }

    func signal(_ sig: Int32) {
        if process.isRunning { kill(process.processIdentifier, sig) }
    }

    /// Ends the process at once (SIGKILL) if it still runs.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A listening TCP socket on 127.0.0.1 holding a port, so a server cannot take it.
final class HeldPort {
    let port: Int
    private let fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard bound == 0, listen(fd, 1) == 0 else { close(fd); throw ExternalTool.Missing(description: "cannot hold a loopback port") }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.fd = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }
}
