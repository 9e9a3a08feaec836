import KVRouteSSE
import Testing

@Suite("Server-sent events")
struct ServerSentEventParserTests {
    static let stream = "data: {\"a\":1}\r\n\r\n"
        + ": keep-alive\n"
        + "event: ping\nid: 7\ndata: first\ndata:second\n\n"
        + "retry: 10\n\n"
        + "data\n\n"
        + "data: caf\u{E9}\rdata:  two spaces\r\r"
        + "data: [DONE]\n\n"

    static let expected = [
        ServerSentEvent(data: "{\"a\":1}"),
        ServerSentEvent(event: "ping", data: "first\nsecond", id: "7"),
        ServerSentEvent(data: ""),
        ServerSentEvent(data: "caf\u{E9}\n two spaces"),
        ServerSentEvent(data: "[DONE]"),
    ]

    @Test("LF, CR and CRLF lines, comments, multi-line data, fields without data are not events")
    func whole() {
        var parser = ServerSentEventParser()
        #expect(parser.feed(Self.stream) == Self.expected)
    }

    @Test("The same events whatever the chunk boundaries (a CRLF or a UTF-8 character split included)", arguments: [1, 2, 3, 5, 13])
    func chunked(cut: Int) {
        let bytes = Array(Self.stream.utf8)
        var parser = ServerSentEventParser()
        var events: [ServerSentEvent] = []
        var i = 0
        while i < bytes.count {
            events += parser.feed(bytes[i..<min(i + cut, bytes.count)])
            i += cut
        }
        #expect(events == Self.expected)
    }

    @Test("An event whose blank line never came is only given by finish()")
    func unterminated() {
        var parser = ServerSentEventParser()
        #expect(parser.feed("data: tail") == [])
        #expect(parser.finish() == ServerSentEvent(data: "tail"))
        #expect(parser.finish() == nil)
    }
}
