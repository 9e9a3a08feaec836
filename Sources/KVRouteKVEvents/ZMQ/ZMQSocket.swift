/// One libzmq socket. Not thread-safe (no ZMQ socket is): it is created on one thread and
/// then used only by the thread that owns it, which closes it.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

final class ZMQSocket: @unchecked Sendable {
    enum Kind: Sendable {
        case pub, sub, req, dealer, router

        var raw: Int32 {
            switch self {
            case .pub: LibZMQ.PUB
            case .sub: LibZMQ.SUB
            case .req: LibZMQ.REQ
            case .dealer: LibZMQ.DEALER
            case .router: LibZMQ.ROUTER
            }
        }
    }

    let zmq: LibZMQ
    private var handle: UnsafeMutableRawPointer?

    init(_ kind: Kind) throws(KVEventsError) {
        zmq = try LibZMQ.load()
        guard let h = zmq.socket(zmq.context, kind.raw) else { throw zmq.lastError("zmq_socket") }
        handle = h
        try setOption(LibZMQ.LINGER, Int32(0))
    }

    deinit { close() }

    func close() {
        if let h = handle { _ = zmq.close(h) }
        handle = nil
    }

    func setOption(_ option: Int32, _ value: Int32) throws(KVEventsError) {
        var v = value
        guard zmq.setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else { throw zmq.lastError("zmq_setsockopt(\(option))") }
    }

    func setOption(_ option: Int32, _ value: Int64) throws(KVEventsError) {
        var v = value
        guard zmq.setsockopt(handle, option, &v, MemoryLayout<Int64>.size) == 0 else { throw zmq.lastError("zmq_setsockopt(\(option))") }
    }

    func setOption(_ option: Int32, bytes: [UInt8]) throws(KVEventsError) {
        let rc = bytes.withUnsafeBytes { zmq.setsockopt(handle, option, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw zmq.lastError("zmq_setsockopt(\(option))") }
    }

    func bind(_ endpoint: String) throws(KVEventsError) {
        guard zmq.bind(handle, endpoint) == 0 else { throw zmq.lastError("bind \(endpoint)") }
    }

    func connect(_ endpoint: String) throws(KVEventsError) {
        guard zmq.connect(handle, endpoint) == 0 else { throw zmq.lastError("connect \(endpoint)") }
    }

    /// The endpoint last bound, with the port the system chose for `tcp://host:*`.
    var lastEndpoint: String? {
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        let rc = buffer.withUnsafeMutableBytes { zmq.getsockopt(handle, LibZMQ.LAST_ENDPOINT, $0.baseAddress, &size) }
        guard rc == 0 else { return nil }
        let s = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return s.isEmpty ? nil : s
    }

    /// Waits up to `timeoutMilliseconds` (0: just look, -1: forever) for `events`.
    func poll(_ events: Int16, timeoutMilliseconds: Int) throws(KVEventsError) -> Bool {
        // zmq_pollitem_t: { void *socket; int fd; short events; short revents; }
        let item = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 8)
        defer { item.deallocate() }
        item.initializeMemory(as: UInt8.self, repeating: 0, count: 16)
        item.storeBytes(of: handle, toByteOffset: 0, as: UnsafeMutableRawPointer?.self)
        item.storeBytes(of: events, toByteOffset: 12, as: Int16.self)
        let rc = zmq.poll(item, 1, timeoutMilliseconds)
        if rc < 0 {
            if zmq.lastErrnoIsRetryable { return false }
            throw zmq.lastError("zmq_poll")
        }
        return rc > 0 && item.load(fromByteOffset: 14, as: Int16.self) & events != 0
    }

    /// Sends every frame of one message, waiting up to `timeoutMilliseconds` for room.
    /// Returns false when the socket had no room in time (the message is not sent).
    @discardableResult
    func send(_ frames: [[UInt8]], timeoutMilliseconds: Int = 0) throws(KVEventsError) -> Bool {
        guard !frames.isEmpty else { return true }
        if timeoutMilliseconds != 0, try !poll(LibZMQ.POLLOUT, timeoutMilliseconds: timeoutMilliseconds) { return false }
        for (i, frame) in frames.enumerated() {
            let flags = LibZMQ.DONTWAIT | (i < frames.count - 1 ? LibZMQ.SNDMORE : 0)
            while true {
                let rc = frame.withUnsafeBytes { zmq.send(handle, $0.baseAddress, $0.count, flags) }
                if rc >= 0 { break }
                let code = zmq.errno()
                // Once the first frame is queued the rest of the message always fits.
                if i == 0, code == EAGAIN { return false }
                if code == EINTR { continue }
                throw zmq.lastError("zmq_send")
            }
        }
        return true
    }

    /// Receives one whole multipart message if one arrives within `timeoutMilliseconds`.
    /// At most `maxFrames` frames are kept; the rest of an over-long message is drained and
    /// `truncated` set, so the caller can reject it.
    func receive(timeoutMilliseconds: Int, maxFrames: Int = 16) throws(KVEventsError) -> (frames: [[UInt8]], truncated: Bool)? {
        guard try poll(LibZMQ.POLLIN, timeoutMilliseconds: timeoutMilliseconds) else { return nil }
        let msg = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
        defer { msg.deallocate() }
        var frames: [[UInt8]] = []
        var truncated = false
        while true {
            _ = zmq.msgInit(msg)
            var rc = zmq.msgRecv(msg, handle, LibZMQ.DONTWAIT)
            while rc < 0, zmq.errno() == EINTR { rc = zmq.msgRecv(msg, handle, LibZMQ.DONTWAIT) }
            if rc < 0 {
                let code = zmq.errno()
                let error = zmq.lastError("zmq_msg_recv")
                _ = zmq.msgClose(msg)
                // A poll that saw input but no first frame: nothing to read after all.
                if frames.isEmpty, code == EAGAIN { return nil }
                throw error
            }
            let size = zmq.msgSize(msg)
            if frames.count < maxFrames {
                if size > 0, let data = zmq.msgData(msg) {
                    frames.append(Array(UnsafeRawBufferPointer(start: data, count: size)))
                } else {
                    frames.append([])
                }
            } else {
                truncated = true
            }
            let more = zmq.msgMore(msg) != 0
            _ = zmq.msgClose(msg)
            if !more { break }
        }
        return (frames, truncated)
    }
}

extension ZMQSocket {
    /// vLLM's rule for its publisher: bind when the endpoint has a wildcard host (`*`, `::`)
    /// or is ipc/inproc, connect otherwise.
    static func bindsByDefault(_ endpoint: String) -> Bool {
        endpoint.contains("*") || endpoint.contains("::") || endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://")
    }
}
