import AsyncHTTPClient
import Foundation
import NIOCore

/// Reads the engines' prefix-cache counters through Prometheus's HTTP query API
/// (`GET /api/v1/query`), the cache-hit validation procedure's first source; used when
/// `--prometheus-url` is set.
///
/// Series are selected by `model_name` (vLLM labels every series with the served model's
/// name), so other models scraped by the same Prometheus do not count.
struct PrometheusClient: Sendable {
    let client: HTTPClient
    let baseURL: String
    let model: String

    init(client: HTTPClient, baseURL: String, model: String) {
        self.client = client
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.model = model
    }

    static let queries = "vllm:prefix_cache_queries_total"
    static let hits = "vllm:prefix_cache_hits_total"

    func selector(_ metric: String) -> String {
        let escaped = model.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return "\(metric){model_name=\"\(escaped)\"}"
    }

    /// Both counters per `instance`; an empty `perEngine` means Prometheus has no series.
    func counters() async throws -> CacheCounters {
        let q = try await vector("sum by (instance) (\(selector(Self.queries)))")
        let h = try await vector("sum by (instance) (\(selector(Self.hits)))")
        var per: [String: CacheCounters.Engine] = [:]
        for (instance, v) in q { per[instance] = .init(queries: v, hits: h[instance] ?? 0) }
        return CacheCounters(perEngine: per)
    }

    /// Unix time of the oldest latest sample among the queries series: once it is past a
    /// moment, every engine has been scraped since then.
    func oldestSampleTime() async throws -> Double? {
        try await vector("min(timestamp(\(selector(Self.queries))))").values.first
    }

    /// An instant query whose result is a vector, keyed by the `instance` label ("" when absent).
    func vector(_ promql: String) async throws -> [String: Double] {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let url = baseURL + "/api/v1/query?query=" + (promql.addingPercentEncoding(withAllowedCharacters: allowed) ?? promql)
        let res: HTTPClientResponse
        let body: ByteBuffer
        do {
            var req = HTTPClientRequest(url: url)
            req.headers.add(name: "accept", value: "application/json")
            res = try await client.execute(req, timeout: .seconds(15))
            body = try await res.body.collect(upTo: 16 << 20)
        } catch {
            throw ValidationFailure(.metrics, "Prometheus at \(baseURL) is unreachable: \(ValidationFailure.describe(error))", cause: error)
        }
        let reply: QueryReply
        do {
            reply = try JSONDecoder().decode(QueryReply.self, from: Data(body.readableBytesView))
        } catch {
            throw ValidationFailure(.metrics, "Prometheus at \(baseURL) answered HTTP \(res.status.code) without the query API's JSON (is --prometheus-url its base URL?)", cause: error)
        }
        guard reply.status == "success", let data = reply.data else {
            let why = [reply.errorType, reply.error].compactMap { $0 }.joined(separator: ": ")
            throw ValidationFailure(.metrics, "Prometheus query \(promql) failed (HTTP \(res.status.code)): \(why.isEmpty ? "status \(reply.status)" : why)")
        }
        var out: [String: Double] = [:]
        for series in data.result ?? [] {
            guard let value = series.value, value.count == 2, case .string(let text) = value[1], let v = Double(text), v.isFinite else { continue }
            out[series.metric?["instance"] ?? "", default: 0] += v
        }
        return out
    }

    /// The query API's envelope: `{"status", "data": {"resultType", "result"}, "errorType", "error"}`.
    struct QueryReply: Decodable {
        struct Series: Decodable {
            var metric: [String: String]?
            var value: [Scalar]?
        }
        struct Payload: Decodable {
            var resultType: String?
            var result: [Series]?

            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                resultType = try c.decodeIfPresent(String.self, forKey: .resultType)
                // A scalar or string result is not a list of series; treat it as none.
                result = try? c.decodeIfPresent([Series].self, forKey: .result)
            }
            enum CodingKeys: String, CodingKey { case resultType, result }
        }
        /// `[ <unix time>, "<value>" ]`.
        enum Scalar: Decodable {
            case number(Double)
            case string(String)
            init(from decoder: any Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let d = try? c.decode(Double.self) { self = .number(d) } else { self = .string(try c.decode(String.self)) }
            }
        }
        var status: String
        var data: Payload?
        var errorType: String?
        var error: String?
    }
}
