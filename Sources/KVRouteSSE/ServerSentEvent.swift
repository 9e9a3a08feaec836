/// One event of a `text/event-stream` body, as the WHATWG HTML standard's event-stream
/// interpretation dispatches it: the `data:` lines joined by LF, the last `event:` and `id:`.
public struct ServerSentEvent: Sendable, Equatable {
    /// The event type (`event:`), nil for the default `message`.
    public var event: String?
    /// The `data:` lines' values joined by LF (one leading space of each value dropped).
    public var data: String
    /// The `id:` field of this event, if it had one.
    public var id: String?

    public init(event: String? = nil, data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }
}
