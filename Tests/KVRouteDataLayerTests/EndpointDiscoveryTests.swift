import KVRouteCore
import KVRouteDataLayer
import KVRouteTestSupport
import Synchronization
import Testing

@Suite("Endpoint membership")
struct EndpointDiscoveryTests {
    @Test("endpoints that leave the membership are reported, so the routing core forgets them")
    func departures() async throws {
        let pool = EndpointPool()
        let gone = EndpointAddress(host: "10.0.0.9", port: 8000)
        pool.setMembers([(gone, "http://10.0.0.9:8000", [:]), (EndpointAddress(host: "10.0.0.1", port: 8000), "http://10.0.0.1:8000", [:])])
        let reported = Mutex<[EndpointAddress]>([])
        let discovery = EndpointDiscovery(specs: try EndpointSpec.parseList("http://10.0.0.1:8000"), pool: pool, logger: quietLogger) { left in
            reported.withLock { $0 += left }
        }
        _ = await discovery.refresh()
        #expect(reported.withLock { $0 } == [gone])
        #expect(pool.members.map(\.address.description) == ["10.0.0.1:8000"])
    }

    @Test("endpoint specs parse URLs, bare host:port and IPv6; bad ones are named")
    func specs() throws {
        let s = try EndpointSpec.parseList("http://10.0.0.1:8000, pod.svc.cluster.local:8000,[fd00::1]:9000")
        #expect(s.map(\.description) == ["http://10.0.0.1:8000", "http://pod.svc.cluster.local:8000", "http://[fd00::1]:9000"])
        #expect(s.map(\.isAddress) == [true, false, true])
        #expect(throws: KVRouteError.self) { try EndpointSpec.parse("https://x:1") }
        #expect(throws: KVRouteError.self) { try EndpointSpec.parse("http://x:99999") }
    }
}
