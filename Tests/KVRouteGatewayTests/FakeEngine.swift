import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An engine that answers `/health` and `/metrics` like a healthy vLLM but completions in
/// one scripted way: slowly, with an error status, by dropping the connection, by stalling
/// after the head, by cutting the body short or by trickling forever.
final class FakeEngine: Sendable {
    enum Behavior: Sendable {
        /// A normal answer after `delay` (SSE when the request asked for a stream).
        case ok(delay: Duration = .zero)
        /// This status with an OpenAI error body.
        case status(Int)
        /// Closes the connection once the whole request was read.
        case dropAfterRequest
        /// Sends the head (and for SSE one event), then nothing, forever.
        case stallAfterHead(sse: Bool)
        /// Announces `announced` bytes, sends `sent`, closes.
        case truncated(announced: Int, sent: Int)
        /// An SSE stream with one event every `every`, never ending.
        case trickle(every: Duration)
    }

    let behavior: Behavior
    private let channel: Mutex<(any Channel)?> = Mutex(nil)
    let port: Int
    private let counter = Counter()

    var url: String { "http://127.0.0.1:\(port)" }
    var address: String { "127.0.0.1:\(port)" }
    /// Completion requests read whole.
    var completions: Int { counter.seen.load(ordering: .relaxed) }

    init(_ behavior: Behavior) async throws {
        self.behavior = behavior
        let counter = self.counter
        let ch = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(behavior: behavior, seen: counter))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = ch.localAddress?.port ?? 0
        channel.withLock { $0 = ch }
    }

    /// Stops listening (new connections are refused); open ones stay.
    func stop() async {
        let ch = channel.withLock { c -> (any Channel)? in
            defer { c = nil }
            return c
        }
        try? await ch?.close()
    }

    deinit {
        _ = channel.withLock { $0?.close(promise: nil) }
    }

    final class Counter: Sendable {
        let seen = Atomic<Int>(0)
        func completion() { seen.add(1, ordering: .relaxed) }
    }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let behavior: Behavior
        let seen: Counter
        var path = ""
        var body = ""
        var stopped = false

        init(behavior: Behavior, seen: Counter) {
            self.behavior = behavior
            self.seen = seen
        }

        func channelInactive(context: ChannelHandlerContext) {
            stopped = true
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                path = h.uri
                body = ""
            case .body(let b):
                body += String(buffer: b)
            case .end:
                answer(context)
            }
        }

        func send(_ context: ChannelHandlerContext, status: HTTPResponseStatus = .ok, type: String, body: String, length: Int? = nil, flush: Bool = true) {
            var headers = HTTPHeaders([("content-type", type)])
            if let length { headers.add(name: "content-length", value: String(length)) } else { headers.add(name: "content-length", value: String(body.utf8.count)) }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            if !body.isEmpty { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil) }
            if length == nil { context.write(wrapOutboundOut(.end(nil)), promise: nil) }
            if flush { context.flush() }
        }

        func sseHead(_ context: ChannelHandlerContext) {
            let headers = HTTPHeaders([("content-type", "text/event-stream"), ("transfer-encoding", "chunked")])
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        }

        func event(_ context: ChannelHandlerContext, _ text: String) {
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
        }

        static let chunk = #"data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}"# + "\n\n"
        static let answerJSON = #"{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#

        func answer(_ context: ChannelHandlerContext) {
            switch path {
            case "/health":
                send(context, type: "text/plain", body: "")
                return
            case "/metrics":
                send(context, type: "text/plain", body: "vllm:num_requests_waiting{model_name=\"m\"} 0\nvllm:num_requests_running{model_name=\"m\"} 0\n")
                return
            default:
                break
            }
            seen.completion()
            let stream = body.contains("\"stream\":true")
            let loop = context.eventLoop.assumeIsolated()
            switch behavior {
            case .ok(let delay):
                let c = delay.components
                loop.scheduleTask(in: .nanoseconds(c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)) {
                    guard !self.stopped else { return }
                    if stream {
                        self.sseHead(context)
                        self.event(context, Self.chunk)
                        self.event(context, "data: [DONE]\n\n")
                        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                    } else {
                        self.send(context, type: "application/json", body: Self.answerJSON)
                    }
                }
            case .status(let code):
                send(context, status: HTTPResponseStatus(statusCode: code), type: "application/json",
                     body: #"{"error":{"message":"busy","type":"Error","param":null,"code":\#(code)}}"#)
            case .dropAfterRequest:
                context.close(promise: nil)
            case .stallAfterHead(let sse):
                if sse {
                    sseHead(context)
                    event(context, Self.chunk)
                } else {
                    send(context, type: "application/json", body: "", length: 100)
                }
            case .truncated(let announced, let sent):
                send(context, type: "application/json", body: String(repeating: "x", count: sent), length: announced)
                context.close(promise: nil)
            case .trickle(let every):
                sseHead(context)
                let c = every.components
                let interval = TimeAmount.nanoseconds(c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)
                func tick() {
                    guard !stopped else { return }
                    event(context, Self.chunk)
                    loop.scheduleTask(in: interval) { tick() }
                }
                tick()
            }
        }
    }
}
