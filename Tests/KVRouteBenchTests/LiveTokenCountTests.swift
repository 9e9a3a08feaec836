import AsyncHTTPClient
import Foundation
import KVRouteBench
import KVRouteEngineSim
import KVRouteTestSupport
import Testing

/// Live runs count tokens as the engines do: against a `kvroute sim` serving Llama-3's BPE
/// (its default), the prompts the hit-rate bounds are computed on have exactly the token
/// counts the engine reported in `usage`, not the workload's own 4-byte counts.
@Suite("Live mode token counts", .serialized)
struct LiveTokenCountTests {
    static var tokenizerFound: Bool { (try? BPETokenizer.locateLlama3()) != nil || ExternalTool.peersRequired }

    @Test("bounds are computed on the engine's tokens", .enabled(if: tokenizerFound))
    func engineTokens() async throws {
        let port = freePort()
        let sim = try ManagedProcess(kvroute: [
            "sim", "--port", "\(port)", "--tokenizer", "llama3", "--time-scale", "0", "--log-level", "error",
        ], name: "live-token-count-sim")
        defer { sim.stop() }
        let url = "http://127.0.0.1:\(port)"
        try await waitForOK(url + "/health", timeout: 60, process: sim)
        let w = SharedPrefixWorkload(groups: 2, promptsPerGroup: 3, prefixTokens: 300, questionTokens: 20, outputTokens: 4, qps: 20, seed: 7)
        // The engine itself is the "gateway": every answer is its own.
        let (run, _) = try await LiveRunner(gatewayURL: url, engineURLs: [url], client: HTTPClient.shared).run(w, label: "direct")
        #expect(run.outcomes.count == 6 && run.issued.count == 6)
        let reported = run.outcomes.map(\.promptTokens).reduce(0, +)
        let counted = run.issued.map(\.tokens.count).reduce(0, +)
        let workload = w.initialRequests().map(\.tokens.count).reduce(0, +)
        #expect(counted == reported, "bounds counted \(counted) prompt tokens, the engine \(reported) (the workload's own count: \(workload))")
        #expect(workload != reported, "the workload's 4-byte count should differ from Llama-3's, or this test proves nothing")
        #expect(run.issued.allSatisfy { !$0.answer.isEmpty })
    }
}
