import ArgumentParser
import Logging

@main
struct KVRoute: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvroute",
        abstract: "A KV-cache-aware router for LLM inference, with a vLLM-compatible engine simulator.",
        subcommands: [DemoCommand.self, SimCommand.self, GatewayCommand.self, EPPCommand.self, ValidateCommand.self, BenchCommand.self]
    )
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
