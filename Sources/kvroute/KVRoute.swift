import ArgumentParser
import Foundation
import KVRouteGateway
import KVRouteRouting
import KVRouteSimServer
import Logging

@main
struct KVRoute: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvroute",
        abstract: "A KV-cache-aware router for LLM inference, with a vLLM-compatible engine simulator.",
        subcommands: [DemoCommand.self, SimCommand.self, GatewayCommand.self, EPPCommand.self, ValidateCommand.self, BenchCommand.self]
    )

    static func main() async {
        lineBufferStandardOutput()
        await main(nil)
    }
}

/// How a command ends on a failure that is not a usage error: one line on stderr
/// (`kvroute gateway: cannot listen on 127.0.0.1:18080: address already in use`), exit status 1.
enum CommandFailure {
    static func exit(_ command: String, _ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("kvroute \(command): \(message)\n".utf8))
        return .failure
    }

    /// Runs a server command's body; a server that cannot listen, or any other error of its
    /// services, ends the command with one line saying so.
    static func reporting(_ command: String, named: Bool = true, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let e as ExitCode {
            throw e
        } catch let e as ValidationError {
            throw e
        } catch {
            throw exit(command, describe(error, named: named))
        }
    }

    /// One line for a server's error; `named` puts the server's name first where a command runs several.
    static func describe(_ error: any Error, named: Bool = true) -> String {
        switch error {
        case let e as ListenError: named ? "\(e.server): \(e)" : "\(e)"
        case let e as SimCluster.ListenError: named ? "engine \(e.engine): \(e)" : "\(e)"
        default: "\(error)"
        }
    }
}

/// Options every long-running subcommand shares.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func bootstrap(label: String) -> Logger {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        return Logger(label: label)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
