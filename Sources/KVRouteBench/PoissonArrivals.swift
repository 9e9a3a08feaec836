/// Open-loop arrivals: a Poisson process whose rate is constant or changes in steps (bursts).
/// Each arrival spends a unit-rate exponential gap through the rate's segments; at a constant
/// rate that is one exponential gap of mean 1 / rate. The workload passes its own ``Draw``,
/// so arrivals interleave with its other draws and a seed gives the same requests as ever.
struct PoissonArrivals {
    /// The rate in force at a time and when it ends (infinity: for good).
    let segment: (Double) -> (rate: Double, end: Double)
    /// The last arrival (0 before the first).
    private(set) var time = 0.0

    init(segment: @escaping (Double) -> (rate: Double, end: Double)) {
        self.segment = segment
    }

    /// Arrivals at `qps` requests per second.
    static func constant(_ qps: Double) -> PoissonArrivals {
        PoissonArrivals { _ in (qps, .infinity) }
    }

    /// The next arrival time.
    mutating func next(using d: inout Draw) -> Double {
        var s = segment(time)
        if s.end == .infinity {
            time += d.exponential(mean: 1 / s.rate)
            return time
        }
        var need = d.exponential(mean: 1)
        while s.rate * (s.end - time) < need {
            need -= s.rate * (s.end - time)
            time = s.end
            s = segment(time)
        }
        time += need / s.rate
        return time
    }
}
