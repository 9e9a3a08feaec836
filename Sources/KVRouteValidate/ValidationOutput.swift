/// Where a validation's progress goes: a terminal, a CI log, a test, or nowhere (the demo's
/// contrast runs). The validator never prints; it tells its output.
public protocol ValidationOutput: Sendable {
    /// A step starts or reports its result (`verify: …`, `measure: …`).
    func step(_ line: String)
    /// A detail under the current step (one engine's configuration, a rollout's progress).
    func detail(_ line: String)
    /// A loop advanced: `done` of `total`. Called from concurrent sessions.
    func progress(_ label: String, done: Int, total: Int)
    /// Something worth knowing that does not stop the run (it is also in the report).
    func warning(_ line: String)
}

extension ValidationOutput {
    public func detail(_ line: String) {}
}
