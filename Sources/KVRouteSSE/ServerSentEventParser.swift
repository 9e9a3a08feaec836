/// Splits a `text/event-stream` body into events as bytes arrive, whatever the chunk
/// boundaries: lines end in LF, CR or CRLF (a CRLF split between two chunks included), a
/// UTF-8 character split between chunks is decoded whole, `:` lines are comments, and a
/// blank line dispatches the event when it carried data.
///
/// A value type fed synchronously, so each byte costs one look whatever the chunking: a
/// stream sent a byte at a time costs no more than one sent whole, and what a reader times
/// (time to first token) is not skewed by the parser.
public struct ServerSentEventParser: Sendable {
    /// Bytes of the line being received.
    private var line: [UInt8] = []
    /// The last byte was a CR: a following LF belongs to the same line end.
    private var afterCR = false
    /// The event being received.
    private var data: [UInt8] = []
    private var hasData = false
    private var eventType: String?
    private var eventID: String?

    public init() {}

    /// Feeds more of the stream; returns the events it completed.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for b in bytes {
            switch b {
            case UInt8(ascii: "\n"):
                if afterCR {
                    afterCR = false
                    continue
                }
                endLine(into: &events)
            case UInt8(ascii: "\r"):
                afterCR = true
                endLine(into: &events)
            default:
                afterCR = false
                line.append(b)
            }
        }
        return events
    }

    /// Feeds a string's UTF-8 bytes.
    public mutating func feed(_ text: String) -> [ServerSentEvent] { feed(text.utf8) }

    /// The event left when the stream ends without its blank line, which the standard
    /// discards: for readers that choose to keep a last event whose blank line never came.
    public mutating func finish() -> ServerSentEvent? {
        var events: [ServerSentEvent] = []
        if !line.isEmpty { endLine(into: &events) }
        endLine(into: &events)
        afterCR = false
        return events.first
    }

    private mutating func endLine(into events: inout [ServerSentEvent]) {
        defer { line.removeAll(keepingCapacity: true) }
        guard !line.isEmpty else {
            if hasData {
                events.append(ServerSentEvent(event: eventType, data: String(decoding: data, as: UTF8.self), id: eventID))
            }
            data.removeAll(keepingCapacity: true)
            hasData = false
            eventType = nil
            eventID = nil
            return
        }
        if line[0] == UInt8(ascii: ":") { return }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
        var valueStart = colon < line.endIndex ? colon + 1 : colon
        if valueStart < line.endIndex, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let name = line[..<colon]
        let value = line[valueStart...]
        if name.elementsEqual("data".utf8) {
            if hasData { data.append(UInt8(ascii: "\n")) }
            data.append(contentsOf: value)
            hasData = true
        } else if name.elementsEqual("event".utf8) {
            eventType = String(decoding: value, as: UTF8.self)
        } else if name.elementsEqual("id".utf8), !value.contains(0) {
            eventID = String(decoding: value, as: UTF8.self)
        }
    }
}
