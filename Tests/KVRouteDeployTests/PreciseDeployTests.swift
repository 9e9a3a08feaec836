import Foundation
import KVRouteCore
import KVRouteTestSupport
import Testing

/// The precise overlays (overlays/sim-precise, overlays/vllm-precise): two picker replicas
/// with the precise profile, engines publishing KV events where the picker subscribes, and
/// both hashing the same way.
@Suite struct PreciseDeployTests {
    typealias Assets = DeployAssetsTests

    /// The picker's EndpointPickerConfig as its Deployment mounts it.
    static func pickerConfig(_ objects: [[String: Any]]) throws -> EndpointPickerConfig {
        let deployment = try Assets.named(objects, "Deployment", "kvroute-epp")
        let configPath = try #require(Assets.flagValues(try Assets.container(deployment))["--config"])
        let mounts = try Assets.container(deployment)["volumeMounts"] as? [[String: Any]] ?? []
        let mount = try #require(mounts.first { configPath.hasPrefix(($0["mountPath"] as? String ?? "?") + "/") })
        let volumes = Assets.dig(deployment, "spec", "template", "spec", "volumes") as? [[String: Any]] ?? []
        let volume = try #require(volumes.first { $0["name"] as? String == mount["name"] as? String })
        let configMap = try Assets.named(objects, "ConfigMap", try #require(Assets.dig(volume, "configMap", "name") as? String))
        let key = String(configPath.dropFirst((mount["mountPath"] as? String ?? "").count + 1))
        return try EndpointPickerConfig.load(yaml: try #require(Assets.dig(configMap, "data", key) as? String))
    }

    @Test("precise overlays: replicated picker, engines publishing KV events where it subscribes, same hashing",
          .enabled(if: DeployAssetsTests.checkerReady), arguments: ["overlays/sim-precise", "overlays/vllm-precise"])
    func preciseOverlay(_ overlay: String) throws {
        let objects = try Assets.rendered(overlay)
        let picker = try Assets.named(objects, "Deployment", "kvroute-epp")
        #expect(Assets.dig(picker, "spec", "replicas") as? Int == 2, "\(overlay): the precise picker runs replicated")

        let config = try Self.pickerConfig(objects)
        let precise = try #require(config.primaryProfile.scorers.compactMap { $0.scorer as? PrecisePrefixCacheScorer }.first,
                                   "\(overlay): the picker's profile has no precise-prefix-cache-scorer")
        let zmq = try #require(precise.zmqEndpoint, "\(overlay): no kvEventsConfig.zmqEndpoint to subscribe at")
        let subscribePort = try #require(Int(zmq.split(separator: ":").last ?? ""))

        let engines = try Assets.named(objects, "Deployment", "llama-decode")
        let c = try Assets.container(engines)
        let flags = Assets.flagValues(c)
        #expect(flags["--prefix-caching-hash-algo"] == "sha256_cbor", "\(overlay): engines must hash with sha256_cbor")
        #expect(flags["--block-size"] == "\(precise.blockSize)", "\(overlay): engines' block size vs the scorer's")
        let env = c["env"] as? [[String: Any]] ?? []
        let seed = env.first { $0["name"] as? String == "PYTHONHASHSEED" }?["value"] as? String
        #expect(seed == precise.hashSeed, "\(overlay): engines' PYTHONHASHSEED vs the scorer's hashSeed")

        let eventsJSON = try #require(flags["--kv-events-config"], "\(overlay): engines publish no KV events")
        let events = try #require(try JSONSerialization.jsonObject(with: Data(eventsJSON.utf8)) as? [String: Any])
        #expect(events["enable_kv_cache_events"] as? Bool == true && events["publisher"] as? String == "zmq")
        let publishPort = Int((events["endpoint"] as? String ?? "").split(separator: ":").last ?? "")
        #expect(publishPort == subscribePort, "\(overlay): engines publish on \(publishPort.map(String.init) ?? "?"), the picker subscribes at \(subscribePort)")
        #expect(Assets.port(c, "kv-events") == subscribePort, "\(overlay): the engines' pod declares no kv-events port")
        let topic = events["topic"] as? String ?? ""
        #expect(topic.hasPrefix(precise.topicFilter ?? ""), "\(overlay): topic \(topic) outside the picker's filter")
        if topic.contains("$(POD_NAME)") {
            #expect(env.contains { $0["name"] as? String == "POD_NAME" }, "\(overlay): the topic names $(POD_NAME), which is not set")
        }
    }
}
