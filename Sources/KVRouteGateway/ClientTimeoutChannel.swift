import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Hummingbird's HTTP/1.1 server with limits on slow clients (``ClientTimeouts``), so that
/// half-sent requests cannot hold connections: a connection waiting for a request is closed
/// after `idle`; once a request's first byte arrived its head must be complete within
/// `head` (else the connection closes); its body must be complete within `body` of the head
/// (else 408 and close, or just close when the answer already started). While the gateway
/// answers, the upstream timeouts bound the wait instead.
struct ClientTimeoutChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let responder: HTTPChannelHandler.Responder
    let timeouts: ClientTimeouts

    static func builder(_ timeouts: ClientTimeouts) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in ClientTimeoutChannel(responder: responder, timeouts: timeouts) }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let handler: NIOLoopBound<RequestDeadlineHandler>
        do {
            let deadlines = ConnectionDeadlines(timeouts)
            // First in the pipeline: sees a request's bytes before the HTTP decoder does.
            try channel.pipeline.syncOperations.addHandler(RequestBytesHandler(deadlines), position: .first)
            handler = NIOLoopBound(RequestDeadlineHandler(deadlines), eventLoop: channel.eventLoop)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return HTTP1Channel(responder: responder, configuration: .init(additionalChannelHandlers: [handler.value]))
            .setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await HTTP1Channel(responder: responder).handle(value: value, logger: logger)
    }
}

/// One connection's deadline, shared by its two handlers (both on the channel's event loop).
final class ConnectionDeadlines {
    enum Phase {
        /// Between requests; `started` once a byte of the next one arrived.
        case waiting(started: Bool)
        /// A head arrived, its body is being read.
        case readingBody
        /// The request was read; the gateway is answering.
        case answering
    }

    let timeouts: ClientTimeouts
    var phase = Phase.waiting(started: false)
    /// Requests whose answer has not ended.
    var open = 0
    var responseStarted = false
    var timer: Scheduled<Void>?
    var context: ChannelHandlerContext?
    /// Set once the gateway answered 408 itself: later writes of the route are dropped.
    var answeredTimeout = false

    init(_ timeouts: ClientTimeouts) { self.timeouts = timeouts }

    func arm(_ after: Duration) {
        timer?.cancel()
        guard let context else { return }
        let c = after.components
        let amount = TimeAmount.nanoseconds(c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: amount) { loopBound.value.expired() }
    }

    func disarm() {
        timer?.cancel()
        timer = nil
    }

    func bytesArrived() {
        if case .waiting(started: false) = phase, open == 0 {
            phase = .waiting(started: true)
            arm(timeouts.head)
        }
    }

    func headArrived() {
        open += 1
        responseStarted = false
        phase = .readingBody
        arm(timeouts.body)
    }

    func endArrived() {
        if open == 0 {
            // The answer ended before the body did (an early error answer).
            phase = .waiting(started: false)
            arm(timeouts.idle)
        } else {
            phase = .answering
            disarm()
        }
    }

    func responseHeadWritten() { responseStarted = true }

    func responseEnded() {
        open = max(0, open - 1)
        if open == 0, case .answering = phase {
            phase = .waiting(started: false)
            arm(timeouts.idle)
        }
    }

    func expired() {
        timer = nil
        guard let context else { return }
        switch phase {
        case .answering:
            return
        case .waiting:
            context.close(promise: nil)
        case .readingBody:
            guard !responseStarted else {
                context.close(promise: nil)
                return
            }
            answeredTimeout = true
            let e = GatewayError(.requestTimeout, "the request body did not arrive within \(timeouts.body)")
            let body = ByteBuffer(bytes: e.body)
            let head = HTTPResponse(status: .requestTimeout, headerFields: [
                .contentType: "application/json", .contentLength: "\(body.readableBytes)", .connection: "close",
            ])
            context.write(NIOAny(HTTPResponsePart.head(head)), promise: nil)
            context.write(NIOAny(HTTPResponsePart.body(body)), promise: nil)
            context.writeAndFlush(NIOAny(HTTPResponsePart.end(nil))).whenComplete { _ in context.close(promise: nil) }
        }
    }
}

/// Notes the first byte of a request (before the decoder can see a whole head).
final class RequestBytesHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let deadlines: ConnectionDeadlines

    init(_ deadlines: ConnectionDeadlines) { self.deadlines = deadlines }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        deadlines.bytesArrived()
        context.fireChannelRead(data)
    }
}

/// Follows requests and answers, arms the deadlines and answers 408 for a body too slow.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    let deadlines: ConnectionDeadlines

    init(_ deadlines: ConnectionDeadlines) { self.deadlines = deadlines }

    func handlerAdded(context: ChannelHandlerContext) {
        deadlines.context = context
        if context.channel.isActive { deadlines.arm(deadlines.timeouts.idle) }
    }

    func channelActive(context: ChannelHandlerContext) {
        deadlines.arm(deadlines.timeouts.idle)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadlines.disarm()
        deadlines.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadlines.disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: deadlines.headArrived()
        case .body: break
        case .end: deadlines.endArrived()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if deadlines.answeredTimeout {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head: deadlines.responseHeadWritten()
        case .body: break
        case .end: deadlines.responseEnded()
        }
        context.write(data, promise: promise)
    }
}
