# One image for the manager and the admission webhook, for linux/amd64 and
# linux/arm64 (docker buildx build --platform linux/amd64,linux/arm64 .).
# The build stage runs the same make target as CI, so the image holds what CI
# built; it runs on the build machine's platform and cross-compiles.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
ENV GOTOOLCHAIN=local CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS=linux TARGETARCH=amd64 VERSION=dev
RUN GOOS=${TARGETOS} GOARCH=${TARGETARCH} make build VERSION=${VERSION}

# Static binaries need nothing else: an empty image, a numeric non-root user.
FROM scratch
COPY --from=build /src/bin/manager /manager
# The GmsaStack's webhook Deployment runs /webhook from this same image.
COPY --from=build /src/bin/webhook /webhook
USER 65532:65532
ENTRYPOINT ["/manager"]
