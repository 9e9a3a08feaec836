import Foundation
import KVRouteCore

/// One HTTP request's ext_proc stream as a value-type state machine, apart from gRPC: it
/// takes Envoy's messages as events and says what to answer. The adapter supplies the
/// decision (``Decide``) and does the I/O.
///
/// - Headers only (`request_body_mode: NONE`): decide from the headers at once.
/// - BUFFERED: continue the headers, decide when the whole body arrives, answer the body with
///   the routing headers (Envoy has not sent the request upstream yet).
/// - STREAMED / FULL_DUPLEX_STREAMED: hold the headers, collect the body chunks, then answer
///   the headers (with routing and a fixed `content-length`) and the body in one piece.
public struct ExtProcStream: Sendable {
    public enum BodyMode: String, Sendable, Equatable, CustomStringConvertible {
        case none, buffered, streamed, fullDuplex = "full-duplex"
        public var description: String { rawValue }
    }

    /// What the adapter must do next.
    public enum Action: Sendable, Equatable {
        /// Answer the request headers without routing (the body decides later).
        case continueHeaders(removeHeaders: [String])
        /// Decide for the request (body may be empty), then answer as `phase` says.
        case decide(RequestInfo, body: [UInt8], phase: Phase)
        /// A body chunk is being held until the body is complete: nothing to send yet.
        case hold
        /// Let a streamed body chunk pass unchanged (routing was decided from the headers).
        case continueBody
        /// Let response headers / body pass, recording the served endpoint.
        case continueResponseHeaders
        case continueResponseBody
        case continueTrailers(request: Bool)
    }

    /// Where the routing answer goes.
    public enum Phase: Sendable, Equatable {
        /// In the request-headers response (headers-only mode).
        case headers
        /// In the request-body response (buffered mode).
        case body
        /// A headers response then a streamed body response carrying the whole body.
        case headersThenBody
    }

    /// The request as the headers describe it.
    public struct RequestInfo: Sendable, Equatable {
        public var path: String
        public var method: String
        public var headers: [String: String]
        public var sessionKey: String?
        /// Client-sent routing headers to remove.
        public var forgedHeaders: [String]
        public var subsetHint: [EndpointAddress]?
    }

    public private(set) var mode: BodyMode = .none
    private var info: RequestInfo?
    private var body: [UInt8] = []
    public private(set) var decided = false

    public init() {}

    public static let destinationHeader = "x-gateway-destination-endpoint"

    public mutating func requestHeaders(_ headers: [(String, String)], endOfStream: Bool, bodyMode: BodyMode) -> Action {
        var map: [String: String] = [:]
        var forged: [String] = []
        var cookie: [String] = []
        for (k, v) in headers {
            let key = k.lowercased()
            if key.hasPrefix(Self.destinationHeader) { forged.append(key); continue }
            if key == "cookie" { cookie.append(v) }
            map[key] = map[key].map { $0 + "," + v } ?? v
        }
        let session = map["x-session-id"].flatMap { $0.isEmpty ? nil : $0 }
            ?? map["session-id"].flatMap { $0.isEmpty ? nil : $0 }
            ?? Self.cookieSession(cookie)
        let r = RequestInfo(path: map[":path"] ?? "/", method: map[":method"] ?? "POST", headers: map, sessionKey: session,
                            forgedHeaders: forged, subsetHint: nil)
        info = r
        mode = endOfStream ? .none : bodyMode
        switch mode {
        case .none, .streamed:
            // Envoy sends streamed chunks only after the headers are answered: route now.
            decided = true
            return .decide(r, body: [], phase: .headers)
        case .buffered:
            return .continueHeaders(removeHeaders: forged)
        case .fullDuplex:
            return .hold
        }
    }

    public mutating func requestBody(_ chunk: [UInt8], endOfStream: Bool) -> Action {
        if mode == .streamed || mode == .none { return .continueBody }
        body.append(contentsOf: chunk)
        guard endOfStream, let info, !decided else { return .hold }
        decided = true
        return .decide(info, body: body, phase: mode == .buffered ? .body : .headersThenBody)
    }

    /// The client sent trailers: the body is complete.
    public mutating func requestTrailers() -> Action {
        if !decided, let info, mode != .none {
            decided = true
            return .decide(info, body: body, phase: mode == .buffered ? .body : .headersThenBody)
        }
        return .continueTrailers(request: true)
    }

    static func cookieSession(_ lines: [String]) -> String? {
        for line in lines {
            for pair in line.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces) == "session-id" {
                    let v = kv[1].trimmingCharacters(in: .whitespaces)
                    if !v.isEmpty { return v }
                }
            }
        }
        return nil
    }
}

