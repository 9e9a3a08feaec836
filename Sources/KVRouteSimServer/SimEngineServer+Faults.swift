import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import ServiceLifecycle

/// The answers of a misbehaving engine, drawn by ``FaultInjector`` for one completion.
extension SimEngineServer {
    /// Thrown out of a response body to make the server close the connection.
    struct InjectedConnectionClose: Error {}

    /// Closes the connection without a byte of answer.
    func dropConnection(_ ctx: SimRequestContext) async -> Response {
        try? await ctx.channel.close()
        return Response(status: .ok)
    }

    /// 200 with a body that looks like a completion at first and is not JSON (SSE events
    /// whose data is not JSON for a streaming request).
    func invalidJSONResponse(stream: Bool) -> Response {
        let garbage = #"{"id":"cmpl-garbage","object":"chat.completion","choices":[{"index":0,"message":{"content":"\u00"#
        if stream {
            let body = "data: \(garbage)\n\ndata: {not json at all\n\ndata: [DONE]\n\n"
            return Response(status: .ok, headers: [.contentType: "text/event-stream", Self.podHeader: configuration.podName],
                            body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        return Response(status: .ok, headers: [.contentType: "application/json", Self.podHeader: configuration.podName],
                        body: .init(byteBuffer: ByteBuffer(string: garbage + "\u{1}\u{FFFD}]]")))
    }

    /// 200 announcing twice the bytes it sends, then the connection closes.
    func truncatedResponse(_ ctx: SimRequestContext, stream: Bool, kind: CompletionRequest.Kind) -> Response {
        let partial: String
        if stream {
            // One whole event, then half of the next.
            partial = CompletionResponse.chunk(kind: kind, id: "cmpl-truncated", created: created, model: model, text: "Hel",
                                               role: false, finish: nil) + #"data: {"id":"cmpl-truncated","#
        } else {
            partial = #"{"id":"cmpl-truncated","object":"chat.completion","model":"\#(model)","choices":[{"index":0,"message":{"role":"assistant","content":"Hel"#
        }
        let announced = partial.utf8.count * 2
        let channel = ctx.channel
        return Response(
            status: .ok,
            headers: [.contentType: stream ? "text/event-stream" : "application/json", Self.podHeader: configuration.podName],
            body: ResponseBody(contentLength: announced) { writer in
                try await writer.write(ByteBuffer(string: partial))
                // Let the bytes leave before the connection goes.
                try? await Task.sleep(for: .milliseconds(20))
                try? await channel.close()
                throw InjectedConnectionClose()
            })
    }

    /// The response, its body held back after the headers for `stall` (`.some(nil)`: until
    /// the engine shuts down).
    func stalled(_ response: Response, _ stall: Duration??) -> Response {
        guard let stall else { return response }
        var r = response
        let inner = response.body
        r.body = ResponseBody(contentLength: inner.contentLength) { writer in
            try await cancelWhenGracefulShutdown {
                if let stall {
                    try await Task.sleep(for: stall)
                } else {
                    while true { try await Task.sleep(for: .seconds(3600)) }
                }
            }
            try await inner.write(writer)
        }
        return r
    }
}
