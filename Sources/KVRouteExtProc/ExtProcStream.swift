import KVRouteCore

/// One HTTP request's ext_proc stream as a value-type state machine, apart from gRPC: it
/// takes Envoy's messages as events and says what to answer. The adapter makes the routing
/// decision and does the I/O.
///
/// - Headers only (`request_body_mode: NONE`) and STREAMED: decide from the headers at once
///   (in STREAMED mode Envoy sends body chunks only after the headers are answered, and the
///   route is chosen when the headers continue).
/// - BUFFERED: continue the headers, decide when the whole body arrives and answer the body
///   with the routing headers (Envoy holds the headers until the body is answered).
/// - FULL_DUPLEX_STREAMED: hold the headers, collect the body chunks, then answer the
///   headers (routing, a fixed `content-length`) and the whole body as one streamed chunk.
/// - Response headers and body pass through; the body's tail is kept to read `usage`.
public struct ExtProcStream: Sendable {
    public enum BodyMode: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
        case none, buffered, streamed, fullDuplex = "full_duplex"
        public var description: String { rawValue }
    }

    /// What the adapter must do next.
    public enum Action: Sendable, Equatable {
        /// Answer the request headers without routing (the body decides later).
        case continueRequestHeaders(removeHeaders: [String])
        /// Decide for the request (the body may be empty), then answer as `phase` says.
        case decide(RequestInfo, body: [UInt8], phase: Phase)
        /// Nothing to send yet (a body chunk held until the body is complete).
        case hold
        /// Let a request body chunk pass unchanged (routing was decided from the headers).
        case continueRequestBody
        case continueRequestTrailers
        /// Answer the response headers (the adapter adds the session token).
        case continueResponseHeaders
        /// Answer a response body chunk; in full-duplex mode the chunk goes back as is.
        case continueResponseBody(echo: [UInt8]?, endOfStream: Bool)
        case continueResponseTrailers
        /// Answer with an error response (413 for a body too large to route on).
        case reject(status: Int, message: String)
        /// Envoy sent something this stream cannot take (the adapter ends the stream).
        case protocolError(String)
    }

    /// Where the routing answer goes.
    public enum Phase: Sendable, Equatable {
        /// In the request-headers response.
        case headers
        /// In the request-body response (buffered mode).
        case body
        /// A headers response then a streamed body response carrying the whole body, then
        /// (when the client sent trailers) a trailers response.
        case headersThenBody(trailers: Bool)
    }

    /// The request as its headers describe it.
    public struct RequestInfo: Sendable, Equatable {
        public var path: String
        /// Lower-cased names; repeated headers joined with commas.
        public var headers: [String: String]
        public var sessionKey: String?
        /// Client-sent routing headers to remove before the request goes upstream.
        public var forgedHeaders: [String]
    }

    public static let destinationHeader = "x-gateway-destination-endpoint"
    /// The largest request body collected for a decision (larger bodies get a 413).
    public static let maxBodyBytes = 16 << 20
    /// How much of the response body's end is kept to find `usage`.
    public static let responseTailBytes = 64 << 10

    public private(set) var requestMode: BodyMode = .none
    public private(set) var responseMode: BodyMode = .none
    public private(set) var info: RequestInfo?
    public private(set) var decided = false
    public private(set) var responseComplete = false
    /// The end of the response body, for ``ResponseUsage``.
    public private(set) var responseTail: [UInt8] = []
    private var body: [UInt8] = []

    public init() {}

    /// The request headers arrived. `session` is the normalised session id.
    public mutating func requestHeaders(
        _ headers: [(String, String)], session: String?, endOfStream: Bool, requestMode: BodyMode, responseMode: BodyMode
    ) -> Action {
        guard info == nil else { return .protocolError("request headers arrived twice") }
        // Linear in the headers however many repeat: values are appended in place and
        // forged names are looked up in a set.
        var map: [String: String] = [:]
        var forged: [String] = []
        var forgedNames: Set<String> = []
        for (k, v) in headers {
            let key = k.lowercased()
            if key.hasPrefix(Self.destinationHeader) {
                if forgedNames.insert(key).inserted { forged.append(key) }
                continue
            }
            if map[key] == nil {
                map[key] = v
            } else {
                map[key]!.append(",")
                map[key]!.append(v)
            }
        }
        let r = RequestInfo(path: map[":path"] ?? "/", headers: map, sessionKey: session, forgedHeaders: forged)
        info = r
        self.requestMode = endOfStream ? .none : requestMode
        self.responseMode = responseMode
        switch self.requestMode {
        case .none, .streamed:
            decided = true
            return .decide(r, body: [], phase: .headers)
        case .buffered:
            return .continueRequestHeaders(removeHeaders: forged)
        case .fullDuplex:
            return .hold
        }
    }

    public mutating func requestBody(_ chunk: [UInt8], endOfStream: Bool) -> Action {
        guard let info else { return .protocolError("a request body arrived before the headers") }
        if decided { return requestMode == .fullDuplex ? .hold : .continueRequestBody }
        guard body.count + chunk.count <= Self.maxBodyBytes else {
            decided = true
            return .reject(status: 413, message: "the request body is larger than \(Self.maxBodyBytes) bytes")
        }
        body.append(contentsOf: chunk)
        // A buffered body comes as one message, answered even when trailers follow.
        guard endOfStream || requestMode == .buffered else { return .hold }
        return complete(info, trailers: false)
    }

    /// The client sent trailers: the body is complete.
    public mutating func requestTrailers() -> Action {
        if !decided, let info { return complete(info, trailers: true) }
        return .continueRequestTrailers
    }

    private mutating func complete(_ info: RequestInfo, trailers: Bool) -> Action {
        decided = true
        let b = body
        body = []
        return .decide(info, body: b, phase: requestMode == .buffered ? .body : .headersThenBody(trailers: trailers))
    }

    public mutating func responseHeaders(endOfStream: Bool) -> Action {
        if endOfStream { responseComplete = true }
        return .continueResponseHeaders
    }

    public mutating func responseBody(_ chunk: [UInt8], endOfStream: Bool) -> Action {
        responseTail.append(contentsOf: chunk)
        if responseTail.count > Self.responseTailBytes {
            responseTail.removeFirst(responseTail.count - Self.responseTailBytes)
        }
        if endOfStream { responseComplete = true }
        return .continueResponseBody(echo: responseMode == .fullDuplex ? chunk : nil, endOfStream: endOfStream)
    }

    public mutating func responseTrailers() -> Action {
        responseComplete = true
        return .continueResponseTrailers
    }
}
