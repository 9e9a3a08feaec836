#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// libzmq, loaded at run time with `dlopen` so that building and running everything else
/// never needs it installed. Only KV-event transport touches it, and reports a clear error
/// when it is missing.
final class LibZMQ: @unchecked Sendable {
    // The C signatures of the functions used (libzmq 4.x, `zmq.h`).
    typealias CtxNew = @convention(c) () -> UnsafeMutableRawPointer?
    typealias Socket = @convention(c) (UnsafeMutableRawPointer?, Int32) -> UnsafeMutableRawPointer?
    typealias Close = @convention(c) (UnsafeMutableRawPointer?) -> Int32
    typealias SetSockOpt = @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafeRawPointer?, Int) -> Int32
    typealias GetSockOpt = @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> Int32
    typealias Endpoint = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Int32
    typealias Send = @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, Int, Int32) -> Int32
    typealias MsgInit = @convention(c) (UnsafeMutableRawPointer?) -> Int32
    typealias MsgRecv = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int32) -> Int32
    typealias MsgData = @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?
    typealias MsgSize = @convention(c) (UnsafeMutableRawPointer?) -> Int
    typealias Poll = @convention(c) (UnsafeMutableRawPointer?, Int32, Int) -> Int32
    typealias Errno = @convention(c) () -> Int32
    typealias StrError = @convention(c) (Int32) -> UnsafePointer<CChar>?
    typealias Version = @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> Void

    let ctxNew: CtxNew
    let socket: Socket
    let close: Close
    let setsockopt: SetSockOpt
    let getsockopt: GetSockOpt
    let bind: Endpoint
    let connect: Endpoint
    let send: Send
    let msgInit: MsgInit
    let msgRecv: MsgRecv
    let msgData: MsgData
    let msgSize: MsgSize
    let msgMore: Close
    let msgClose: MsgInit
    let poll: Poll
    let errno: Errno
    let strerror: StrError
    let version: Version

    /// One context for the process, as pyzmq's `Context.instance()`: never terminated, so
    /// closing a socket can never hang on `zmq_ctx_term`.
    let context: UnsafeMutableRawPointer

    // Constants from zmq.h.
    static let PUB: Int32 = 1, SUB: Int32 = 2, REQ: Int32 = 3, DEALER: Int32 = 5, ROUTER: Int32 = 6
    static let SUBSCRIBE: Int32 = 6, LINGER: Int32 = 17, MAXMSGSIZE: Int32 = 22, SNDHWM: Int32 = 23, RCVHWM: Int32 = 24
    static let LAST_ENDPOINT: Int32 = 32
    static let DONTWAIT: Int32 = 1, SNDMORE: Int32 = 2
    static let POLLIN: Int16 = 1, POLLOUT: Int16 = 2

    /// Library names tried in order; `KVROUTE_LIBZMQ` (a path) comes first when set.
    static var candidates: [String] {
        var names: [String] = []
        if let custom = getenv("KVROUTE_LIBZMQ") { names.append(String(cString: custom)) }
        #if canImport(Darwin)
        names += ["libzmq.5.dylib", "/opt/homebrew/lib/libzmq.5.dylib", "/usr/local/lib/libzmq.5.dylib"]
        #else
        names += ["libzmq.so.5", "libzmq.so"]
        #endif
        return names
    }

    static let shared: Result<LibZMQ, KVEventsError> = Result { () throws(KVEventsError) in try LibZMQ() }

    /// The loaded library, or the error that says how to install it.
    static func load() throws(KVEventsError) -> LibZMQ { try shared.get() }

    init(candidates: [String] = LibZMQ.candidates) throws(KVEventsError) {
        var handle: UnsafeMutableRawPointer?
        var reasons: [String] = []
        for name in candidates {
            handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)
            if handle != nil { break }
            if let e = dlerror() { reasons.append(String(cString: e)) }
        }
        guard let handle else {
            throw KVEventsError(
                code: .zmqUnavailable,
                message: "KV events need libzmq 4 at run time and it is not installed (install it with `apt-get install libzmq5` on Debian/Ubuntu, `brew install zeromq` on macOS, or set KVROUTE_LIBZMQ to its path); tried: \(reasons.joined(separator: "; "))"
            )
        }
        func symbol<T>(_ name: String, _: T.Type) throws(KVEventsError) -> T {
            guard let p = dlsym(handle, name) else {
                throw KVEventsError(code: .zmqUnavailable, message: "libzmq has no \(name): a libzmq 4.x is required (`apt-get install libzmq5`)")
            }
            return unsafeBitCast(p, to: T.self)
        }
        ctxNew = try symbol("zmq_ctx_new", CtxNew.self)
        socket = try symbol("zmq_socket", Socket.self)
        close = try symbol("zmq_close", Close.self)
        setsockopt = try symbol("zmq_setsockopt", SetSockOpt.self)
        getsockopt = try symbol("zmq_getsockopt", GetSockOpt.self)
        bind = try symbol("zmq_bind", Endpoint.self)
        connect = try symbol("zmq_connect", Endpoint.self)
        send = try symbol("zmq_send", Send.self)
        msgInit = try symbol("zmq_msg_init", MsgInit.self)
        msgRecv = try symbol("zmq_msg_recv", MsgRecv.self)
        msgData = try symbol("zmq_msg_data", MsgData.self)
        msgSize = try symbol("zmq_msg_size", MsgSize.self)
        msgMore = try symbol("zmq_msg_more", Close.self)
        msgClose = try symbol("zmq_msg_close", MsgInit.self)
        poll = try symbol("zmq_poll", Poll.self)
        errno = try symbol("zmq_errno", Errno.self)
        strerror = try symbol("zmq_strerror", StrError.self)
        version = try symbol("zmq_version", Version.self)
        guard let ctx = ctxNew() else { throw KVEventsError(code: .zmqFailure, message: "zmq_ctx_new failed") }
        context = ctx
    }

    /// "major.minor.patch" of the loaded library.
    var versionString: String {
        var a: Int32 = 0, b: Int32 = 0, c: Int32 = 0
        version(&a, &b, &c)
        return "\(a).\(b).\(c)"
    }

    /// The error of the last failed call on this thread.
    func lastError(_ what: String) -> KVEventsError {
        let code = errno()
        let text = strerror(code).map { String(cString: $0) } ?? "error \(code)"
        return KVEventsError(code: .zmqFailure, message: "\(what): \(text)")
    }

    var lastErrnoIsRetryable: Bool {
        let e = errno()
        return e == EAGAIN || e == EINTR
    }
}
