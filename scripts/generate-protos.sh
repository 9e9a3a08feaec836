#!/usr/bin/env bash
# Regenerates Sources/KVRouteProto/Generated/*.swift from protos/ (kvroute's own minimal
# .proto files). Builds the generators once in a scratch directory outside the repository,
# pinned to swift-protobuf 1.39.0 (protoc-gen-swift) and grpc-swift-protobuf 2.4.1
# (protoc-gen-grpc-swift-2). CI never runs this: the generated Swift is committed.
# Needs protoc (Debian: protobuf-compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${KVROUTE_PLUGIN_DIR:-/tmp/kvroute-protoc-plugins}
mkdir -p "$work"
command -v protoc >/dev/null || { echo "protoc is missing (apt-get install protobuf-compiler)"; exit 2; }
build() { # repo version product
  local dir="$work/$(basename "$1")"
  [ -d "$dir" ] || git clone -q "https://github.com/$1.git" "$dir"
  git -C "$dir" checkout -q "$2"
  (cd "$dir" && swift build -c release --product "$3" >/dev/null)
  echo "$dir/.build/release/$3"
}
swift_plugin=$(build apple/swift-protobuf 1.39.0 protoc-gen-swift)
grpc_plugin=$(build grpc/grpc-swift-protobuf 2.4.1 protoc-gen-grpc-swift-2)
out=Sources/KVRouteProto/Generated
rm -rf "$out" && mkdir -p "$out"
protos=$(cd protos && find . -name '*.proto' | sed 's|^\./||' | sort)
includes="-I protos -I /usr/include"
protoc $includes --plugin=protoc-gen-swift="$swift_plugin" --swift_out="$out" \
  --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores $protos
protoc $includes --plugin=protoc-gen-grpc-swift="$grpc_plugin" --grpc-swift_out="$out" \
  --grpc-swift_opt=Visibility=Public,Client=true,Server=true,FileNaming=PathToUnderscores \
  envoy/service/ext_proc/v3/external_processor.proto grpc/health/v1/health.proto
echo "generated with protoc $(protoc --version | awk '{print $2}'), protoc-gen-swift (swift-protobuf 1.39.0), protoc-gen-grpc-swift-2 (grpc-swift-protobuf 2.4.1):"
ls "$out"
