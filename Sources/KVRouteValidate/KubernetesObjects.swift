/// The few fields of Kubernetes objects the validator reads, decoded leniently (every field
/// optional) so API-server versions that add or omit fields still decode.
enum KubernetesObjects {
    struct OwnerReference: Decodable {
        var kind: String?
        var name: String?
        var controller: Bool?
    }

    struct ObjectMeta: Decodable {
        var name: String?
        var generation: Int?
        var labels: [String: String]?
        var annotations: [String: String]?
        var ownerReferences: [OwnerReference]?
        var deletionTimestamp: String?

        /// The owner that controls this object (a pod's ReplicaSet, a ReplicaSet's Deployment).
        func controller(kind: String) -> String? {
            (ownerReferences ?? []).first { $0.kind == kind && $0.controller != false }?.name
        }
    }

    struct ContainerPort: Decodable {
        var name: String?
        var containerPort: Int?
    }

    struct Container: Decodable {
        var name: String?
        var ports: [ContainerPort]?
    }

    struct PodCondition: Decodable {
        var type: String?
        var status: String?
    }

    struct Pod: Decodable {
        struct Spec: Decodable { var containers: [Container]? }
        struct Status: Decodable {
            var phase: String?
            var podIP: String?
            var conditions: [PodCondition]?
        }
        var metadata: ObjectMeta?
        var spec: Spec?
        var status: Status?

        /// Running, Ready, with an IP, and not being deleted: a pod that can serve.
        var serving: Bool {
            status?.phase == "Running" && status?.podIP != nil && metadata?.deletionTimestamp == nil
                && (status?.conditions ?? []).contains { $0.type == "Ready" && $0.status == "True" }
        }
    }

    struct PodList: Decodable { var items: [Pod]? }

    struct ReplicaSet: Decodable { var metadata: ObjectMeta? }

    struct Deployment: Decodable {
        struct Spec: Decodable { var replicas: Int? }
        struct Status: Decodable {
            var observedGeneration: Int?
            var replicas: Int?
            var updatedReplicas: Int?
            var readyReplicas: Int?
            var availableReplicas: Int?
        }
        var metadata: ObjectMeta?
        var spec: Spec?
        var status: Status?

        /// `kubectl rollout status`'s test: the controller saw the new template, every
        /// replica runs it, no old replica is left, and all are ready and available.
        func rolledOut(generation: Int) -> Bool {
            let want = spec?.replicas ?? 1
            let s = status
            return (s?.observedGeneration ?? 0) >= generation && (s?.updatedReplicas ?? 0) == want
                && (s?.replicas ?? 0) == want && (s?.readyReplicas ?? 0) == want && (s?.availableReplicas ?? 0) == want
        }

        var progressLine: String {
            let want = spec?.replicas ?? 1
            return "\(status?.updatedReplicas ?? 0)/\(want) updated, \(status?.readyReplicas ?? 0) ready, \(status?.replicas ?? 0) total"
        }
    }

    /// The API server's error body.
    struct Status: Decodable {
        var message: String?
        var reason: String?
    }
}
