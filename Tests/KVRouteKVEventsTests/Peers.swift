import Foundation
@testable import KVRouteKVEvents
import KVRouteTestSupport

/// The Python peers in Tests/peers, run with a Python that has msgpack, pyzmq and cbor2
/// (scripts/install-test-tools.sh puts them in .tools/venv).
enum Peers {
    static let python: String? = {
        for name in ["python3", "python"] {
            guard let py = ExternalTool.find(name) else { continue }
            if let r = try? runBlocking(py, ["-c", "import msgpack, zmq, cbor2"], stdin: nil, timeout: 60), r.status == 0 { return py }
        }
        return nil
    }()

    /// Tests that need the Python peers run when they are installed, and always when
    /// KVROUTE_REQUIRE_PEERS=1 (they then fail loudly if missing).
    static var enabled: Bool { python != nil || ExternalTool.peersRequired }

    static func script(_ name: String) -> String { ExternalTool.repositoryRoot.appendingPathComponent("Tests/peers/\(name)").path }

    static func requirePython() throws -> String {
        guard let python else { throw ExternalTool.Missing(description: "no Python with msgpack, pyzmq and cbor2; run scripts/install-test-tools.sh") }
        return python
    }

    /// Runs a peer script to completion and parses its JSON output.
    static func run<T: Decodable>(_ script: String, _ args: [String], stdin: String? = nil, timeout: Double = 60, as: T.Type) async throws -> T {
        let python = try requirePython()
        let path = Self.script(script)
        // Blocking waits run on threads of their own: the global dispatch queues are narrow
        // on Linux, and tests that publish on timers share them.
        let result: Result<PeerResult, any Error> = await withCheckedContinuation { c in
            Thread { c.resume(returning: Result { try runBlocking(python, [path] + args, stdin: stdin, timeout: timeout) }) }.start()
        }
        let r = try result.get()
        guard r.status == 0 else {
            throw ExternalTool.Missing(description: "\(script) \(args.joined(separator: " ")) exited \(r.status): \(r.stderr.suffix(2_000)) \(r.stdout.suffix(500))")
        }
        return try JSONDecoder().decode(T.self, from: Data(r.stdout.utf8))
    }

    /// Runs a program to completion (killed after `timeout` seconds), reading its output on
    /// dedicated threads.
    static func runBlocking(_ path: String, _ args: [String], stdin: String?, timeout: Double) throws -> PeerResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        let outData = Locked(Data()), errData = Locked(Data())
        let done = DispatchSemaphore(value: 0)
        for (handle, sink) in [(out.fileHandleForReading, outData), (err.fileHandleForReading, errData)] {
            Thread {
                let d = handle.readDataToEndOfFile()
                sink.withLock { $0 = d }
                done.signal()
            }.start()
        }
        if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? inp.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        done.wait()
        done.wait()
        return PeerResult(status: p.terminationStatus, stdout: String(decoding: outData.value, as: UTF8.self), stderr: String(decoding: errData.value, as: UTF8.self))
    }
}

struct PeerResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// A peer script running in the background; its first stdout line is read as JSON.
final class BackgroundPeer: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()
    private let errors = Pipe()

    init(_ script: String, _ args: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try Peers.requirePython())
        process.arguments = [Peers.script(script)] + args
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// The first line the peer prints (blocking read off the cooperative pool).
    func firstLine<T: Decodable>(as: T.Type) async throws -> T {
        let handle = output.fileHandleForReading
        let line: Data = await withCheckedContinuation { c in
            Thread {
                var data = Data()
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    data.append(chunk)
                    if let nl = data.firstIndex(of: 0x0A) { data = data[..<nl]; break }
                }
                c.resume(returning: data)
            }.start()
        }
        return try JSONDecoder().decode(T.self, from: line)
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<100 where process.isRunning { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// The neutral description of a batch both sides can produce (see kv_events_reference.py).
struct BatchDescription: Codable, Equatable {
    var ts: Double
    var dp: Int?
    var events: [EventDescription]
    var skipped: Int?
}

struct EventDescription: Codable, Equatable {
    var type: String
    var block_hashes: [String]?
    var parent_block_hash: String?
    var token_ids: [UInt32]?
    var block_size: Int?
    var lora_id: Int?
    var medium: String?
    var lora_name: String?
    var extra_keys: [[String]?]?
    var group_idx: Int?
    var kv_cache_spec_kind: String?
    var kv_cache_spec_sliding_window: Int?
}

extension BatchDescription {
    init(_ batch: KVEventBatch, skipped: Bool = true) {
        self.init(ts: batch.ts, dp: batch.dataParallelRank, events: batch.events.map(EventDescription.init), skipped: skipped ? batch.skippedEvents : nil)
    }

    /// Without the skipped count (what a peer that decoded the payload itself reports).
    var withoutSkipped: BatchDescription { var d = self; d.skipped = nil; return d }
}

extension EventDescription {
    init(_ event: KVEvent) {
        self.init(type: event.typeName)
        switch event {
        case .blockStored(let e):
            block_hashes = e.blockHashes.map(Self.text)
            parent_block_hash = e.parentBlockHash.map(Self.text)
            token_ids = e.tokenIDs
            block_size = e.blockSize
            lora_id = e.loraID
            medium = e.medium
            lora_name = e.loraName
            extra_keys = e.extraKeys?.map { $0?.map(Self.text) }
            group_idx = e.groupIdx
            kv_cache_spec_kind = e.kvCacheSpecKind
            kv_cache_spec_sliding_window = e.kvCacheSpecSlidingWindow
        case .blockRemoved(let e):
            block_hashes = e.blockHashes.map(Self.text)
            medium = e.medium
            group_idx = e.groupIdx
        case .allBlocksCleared:
            break
        }
    }

    static func text(_ h: ExternalBlockHash) -> String {
        switch h {
        case .unsigned(let u): "u:\(u)"
        case .signed(let s): "i:\(s)"
        case .bytes(let b): "b:" + hex(b)
        }
    }

    static func text(_ v: MessagePackValue) -> String {
        switch v {
        case .string(let s): "s:" + s
        case .binary(let b): "b:" + hex(b)
        case .unsigned(let u): "i:\(u)"
        case .signed(let s): "i:\(s)"
        default: "?\(v)"
        }
    }
}

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

func unhex(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var i = s.startIndex
    while i < s.endIndex, let j = s.index(i, offsetBy: 2, limitedBy: s.endIndex) {
        out.append(UInt8(s[i..<j], radix: 16) ?? 0)
        i = j
    }
    return out
}
