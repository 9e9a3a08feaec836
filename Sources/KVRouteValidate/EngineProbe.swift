import AsyncHTTPClient
import Foundation
import KVRouteDataLayer
import NIOCore

/// One engine whose metrics the validator reads.
public struct EngineTarget: Sendable, Hashable {
    /// `ip:port`, as the gateway's `x-upstream-host` names it.
    public var address: String
    /// Base URL (`http://ip:port`).
    public var baseURL: String
    /// Pod name, when found through Kubernetes.
    public var name: String?
}

/// Prefix-cache counters summed over engines, and per engine.
public struct CacheCounters: Sendable {
    public var queries: Double
    public var hits: Double
    public var perEngine: [String: (queries: Double, hits: Double)]
}

/// Reads engines' `/metrics` directly and the same counters from Prometheus.
struct EngineProbe: Sendable {
    let client: HTTPClient

    func metrics(_ e: EngineTarget) async throws -> EngineMetricsSnapshot {
        let res = try await client.execute(HTTPClientRequest(url: e.baseURL + "/metrics"), timeout: .seconds(10))
        let body = try await res.body.collect(upTo: 32 << 20)
        guard res.status == .ok else {
            throw ValidationFailure(.metrics, "\(e.baseURL)/metrics answered HTTP \(res.status.code)")
        }
        return EngineMetricsSnapshot.parse(String(buffer: body))
    }

    func counters(_ engines: [EngineTarget]) async throws -> CacheCounters {
        var per: [String: (Double, Double)] = [:]
        for e in engines {
            let m: EngineMetricsSnapshot
            do { m = try await metrics(e) } catch let f as ValidationFailure { throw f } catch {
                throw ValidationFailure(.metrics, "cannot read \(e.baseURL)/metrics: \(error)")
            }
            per[e.address] = (m.prefixQueries, m.prefixHits)
        }
        return CacheCounters(queries: per.values.reduce(0) { $0 + $1.0 }, hits: per.values.reduce(0) { $0 + $1.1 }, perEngine: per)
    }

    /// `sum(vllm:prefix_cache_{queries,hits}_total)` from the Prometheus query API.
    func prometheusTotals(_ base: String) async throws -> (queries: Double, hits: Double) {
        (try await prometheusScalar(base, "sum(vllm:prefix_cache_queries_total)"),
         try await prometheusScalar(base, "sum(vllm:prefix_cache_hits_total)"))
    }

    func prometheusScalar(_ base: String, _ query: String) async throws -> Double {
        var comps = URLComponents(string: base.hasSuffix("/") ? String(base.dropLast()) : base)
        comps?.path += "/api/v1/query"
        comps?.queryItems = [URLQueryItem(name: "query", value: query)]
        guard let url = comps?.url?.absoluteString else { throw ValidationFailure(.usage, "bad --prometheus-url \(base)") }
        let res: HTTPClientResponse
        let body: ByteBuffer
        do {
            res = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            body = try await res.body.collect(upTo: 8 << 20)
        } catch {
            throw ValidationFailure(.metrics, "Prometheus at \(base) is unreachable: \(error)")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else {
            throw ValidationFailure(.metrics, "Prometheus at \(base) answered HTTP \(res.status.code) without JSON")
        }
        guard (json["status"] as? String) == "success" else {
            throw ValidationFailure(.metrics, "Prometheus query \(query) failed: \((json["error"] as? String) ?? "status \(json["status"] ?? "?")")")
        }
        guard let data = json["data"] as? [String: Any], let result = data["result"] as? [[String: Any]], let first = result.first,
              let value = first["value"] as? [Any], let text = value.last as? String, let v = Double(text) else {
            throw ValidationFailure(.metrics, "Prometheus has no data for \(query) (are the engines scraped?)")
        }
        return v
    }
}
