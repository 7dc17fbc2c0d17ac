# syntax=docker/dockerfile:1.7
# One image per service: docker build --build-arg SERVICE=order -t kshop/order .
# SERVICE is one of gateway, auth, product, order, mail, controller, loadgen.
#
# Services that talk to Kafka link librdkafka (confluent-kafka-go's bundled static
# build, against glibc), so only they are built with CGO: product, order and the
# controller directly, auth through its outbox. Every image runs as nonroot on
# distroless, without a shell. hack/image.sh builds the same image without Docker;
# hack/ociimage's tests keep the two equal.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
ARG SERVICE
# skaffold debug passes -gcflags="all=-N -l" here (SKAFFOLD_GO_GCFLAGS) for delve.
ARG GCFLAGS=""
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY services ./services
# Native builds per platform: the build stage runs on each target platform (an
# arm64 builder for arm64, or emulation), because cross-compiling cgo would need
# a C cross-toolchain per target. -tags nomsgpack leaves out gin's MessagePack
# codec, which no service speaks: 6 MB less of the binary mapped into every pod.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    test -n "$SERVICE" || { echo "build with --build-arg SERVICE=<gateway|auth|product|order|mail|controller|loadgen>"; exit 1; }; \
    case "$SERVICE" in \
      product|order|controller) cgo=1 ;; \
      *) cgo=0 ;; \
    esac; \
    CGO_ENABLED=$cgo GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -tags nomsgpack -gcflags "${GCFLAGS}" -ldflags "$([ -n "$GCFLAGS" ] || echo -s -w)" -o /out/app ./services/cmd/$SERVICE

# distroless/base carries glibc for the cgo services and costs the static ones
# about 20 MB over distroless/static; one runtime keeps the file and the chart simple.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/app /app
# distroless's nonroot user, by number: Kubernetes checks runAsNonRoot only
# against a numeric user.
USER 65532:65532
ENTRYPOINT ["/app"]
