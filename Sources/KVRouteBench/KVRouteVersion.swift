/// The kvroute release a report was made with, so runs can be compared.
public enum KVRouteVersion {
    public static let current = "0.1.0"
}
