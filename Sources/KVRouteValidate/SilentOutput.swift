/// Prints nothing: for callers that only want the report.
public struct SilentOutput: ValidationOutput {
    public init() {}
    public func step(_ line: String) {}
    public func detail(_ line: String) {}
    public func progress(_ label: String, done: Int, total: Int) {}
    public func warning(_ line: String) {}
}
