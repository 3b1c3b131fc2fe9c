# One image for the manager and the admission webhook.
# The build stage runs the same make target as CI, so the image holds what CI built.
FROM golang:1.26 AS build
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
