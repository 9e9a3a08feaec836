import Foundation

/// A client that walks away from an HTTP/1.1 exchange at a chosen phase, over a plain
/// socket, so a test controls exactly which bytes went out before the connection closed.
public enum DisconnectingClient {
    public enum Phase: String, Sendable, CaseIterable {
        /// Headers announce a body; the connection closes before any of it.
        case beforeBody
        /// Half the announced body, then close.
        case midBody
        /// The whole request, then close without reading.
        case afterRequest
        /// The whole request, the response head read, then close.
        case afterHead
        /// A streaming request, the head and at least one SSE event read, then close.
        case midStream
    }

    /// Runs one exchange on `port` and closes at `phase`; `reset` closes with an RST instead
    /// of a FIN. Returns the response bytes seen (possibly none).
    @discardableResult
    public static func run(port: Int, phase: Phase, body: Data, reset: Bool, path: String = "/v1/chat/completions", timeout: Double = 10) async -> String {
        await withCheckedContinuation { c in
            DispatchQueue.global().async {
                c.resume(returning: exchange(port: port, phase: phase, body: body, reset: reset, path: path, timeout: timeout))
            }
        }
    }

    static func exchange(port: Int, phase: Phase, body: Data, reset: Bool, path: String, timeout: Double) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return "" }
        defer {
            if reset {
                var l = linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
            }
            close(fd)
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
        guard connected else { return "" }

        let head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nx-session-id: leaver-\(phase.rawValue)\r\n\r\n"
        func send(_ d: Data) { d.withUnsafeBytes { p in _ = Glibc.send(fd, p.baseAddress, p.count, Int32(MSG_NOSIGNAL)) } }
        send(Data(head.utf8))
        switch phase {
        case .beforeBody: return ""
        case .midBody:
            send(body.prefix(body.count / 2))
            usleep(50_000)
            return ""
        case .afterRequest:
            send(body)
            return ""
        case .afterHead, .midStream:
            send(body)
        }
        var seen = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            seen.append(contentsOf: buffer[0..<n])
            let text = String(decoding: seen, as: UTF8.self)
            guard let end = text.range(of: "\r\n\r\n") else { continue }
            if phase == .afterHead { break }
            if text[end.upperBound...].contains("data:") { break }
        }
        return String(decoding: seen, as: UTF8.self)
    }
}

/// One HTTP/1.1 exchange over a plain socket, read to the end, so a test sees exactly what a
/// server sent (a short body, a closed connection) where an HTTP client would only report
/// an error.
public struct RawExchange: Sendable {
    /// The response head (status line and headers), when one arrived.
    public var head: String?
    /// Body bytes received after the head.
    public var body: Data
    /// True when the server closed the connection; false when the read timed out.
    public var closed: Bool

    public var status: Int? { head.flatMap { $0.split(separator: " ").dropFirst().first.flatMap { Int($0) } } }
    public var contentLength: Int? {
        head?.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
    }

    /// Sends `body` to `path` with `Connection: close` and reads until the server closes or
    /// `timeout` seconds pass.
    public static func post(port: Int, path: String = "/v1/chat/completions", body: Data, timeout: Double = 5) async -> RawExchange {
        await withCheckedContinuation { c in
            DispatchQueue.global().async { c.resume(returning: run(port: port, path: path, body: body, timeout: timeout)) }
        }
    }

    static func run(port: Int, path: String, body: Data, timeout: Double) -> RawExchange {
        var result = RawExchange(head: nil, body: Data(), closed: false)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return result }
        defer { close(fd) }
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        guard withUnsafePointer(to: &addr, {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }) == 0 else { return result }
        let request = Data("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        request.withUnsafeBytes { p in _ = send(fd, p.baseAddress, p.count, Int32(MSG_NOSIGNAL)) }
        var all = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { result.closed = true; break }
            if n > 0 { all.append(contentsOf: buffer[0..<n]) }
        }
        if let end = all.range(of: Data("\r\n\r\n".utf8)) {
            result.head = String(decoding: all[..<end.lowerBound], as: UTF8.self)
            result.body = all[end.upperBound...]
        } else {
            result.body = all
        }
        return result
    }
}
