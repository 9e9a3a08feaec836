import AsyncHTTPClient
import Foundation
import KVRouteDataLayer
import KVRoutePrecise
import NIOCore

/// Talks to the engines directly: their `/metrics` (parsed with the data layer's vLLM
/// metric extraction), `/reset_prefix_cache` and `/health`.
struct EngineProbe: Sendable {
    let client: HTTPClient

    /// One engine's metrics page, parsed; a failure says which engine and why.
    func metrics(_ e: EngineTarget) async throws -> EngineMetricsSnapshot {
        let res: HTTPClientResponse
        let body: ByteBuffer
        do {
            res = try await client.execute(HTTPClientRequest(url: e.baseURL + "/metrics"), timeout: .seconds(10))
            body = try await res.body.collect(upTo: 32 << 20)
        } catch {
            throw ValidationFailure(.metrics, "engine \(e.label) is unreachable at \(e.baseURL)/metrics: \(ValidationFailure.describe(error))", cause: error)
        }
        guard res.status == .ok else {
            throw ValidationFailure(.metrics, "engine \(e.label): GET \(e.baseURL)/metrics answered HTTP \(res.status.code)")
        }
        return EngineMetricsSnapshot.parse(String(buffer: body))
    }

    /// `vllm:cache_config_info`'s labels (empty when the engine exports none or is unreachable).
    func cacheConfigLabels(_ e: EngineTarget) async -> [String: String] {
        guard let res = try? await client.execute(HTTPClientRequest(url: e.baseURL + "/metrics"), timeout: .seconds(10)),
              let body = try? await res.body.collect(upTo: 32 << 20) else { return [:] }
        let sample = PrometheusText.parse(String(buffer: body)[...]) { $0 == "vllm:cache_config_info" }.first
        var out: [String: String] = [:]
        for (k, v) in sample?.labels ?? [:] { out[String(k)] = String(v) }
        return out
    }

    /// The prefix-cache counters of every engine now.
    func counters(_ engines: [EngineTarget]) async throws -> CacheCounters {
        var per: [String: CacheCounters.Engine] = [:]
        for e in engines {
            let m = try await metrics(e)
            per[e.address] = .init(queries: m.prefixQueries, hits: m.prefixHits)
        }
        return CacheCounters(perEngine: per)
    }

    /// `POST /reset_prefix_cache`; nil when done, else why not (vLLM serves the route only
    /// with `VLLM_SERVER_DEV_MODE=1`, so a 404 is expected on production engines).
    func reset(_ e: EngineTarget) async throws -> String? {
        var req = HTTPClientRequest(url: e.baseURL + "/reset_prefix_cache")
        req.method = .POST
        do {
            let res = try await client.execute(req, timeout: .seconds(30))
            _ = try? await res.body.collect(upTo: 1 << 20)
            switch res.status.code {
            case 200..<300: return nil
            case 404: return "\(e.label): POST /reset_prefix_cache answered 404 (vLLM serves it only with VLLM_SERVER_DEV_MODE=1); its cache stays warm"
            default: return "\(e.label): POST /reset_prefix_cache answered HTTP \(res.status.code); its cache may stay warm"
            }
        } catch {
            throw ValidationFailure(.metrics, "cannot reset engine \(e.label): \(ValidationFailure.describe(error))", cause: error)
        }
    }

    /// True when `GET /health` answers 200.
    func healthy(_ e: EngineTarget) async -> Bool {
        guard let res = try? await client.execute(HTTPClientRequest(url: e.baseURL + "/health"), timeout: .seconds(3)) else { return false }
        _ = try? await res.body.collect(upTo: 1 << 20)
        return res.status == .ok
    }
}
