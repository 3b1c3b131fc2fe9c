# One image for the manager and the admission webhook, for linux/amd64 and
# linux/arm64. It holds exactly the static binaries that `make build-cross`
# (CI) builds, so nothing is compiled inside a container and no base image is
# pulled:
#
#   make build-cross
#   docker buildx build --platform linux/amd64,linux/arm64 -t <registry>/gmsa-operator:<tag> .
#
# hack/ociimage assembles the same image (same files, user and entrypoint)
# without a container engine; `make e2e` loads it into the test cluster that way.
FROM scratch
ARG TARGETARCH=amd64
COPY bin/linux-${TARGETARCH}/manager /manager
# The GmsaStack's webhook Deployment runs /webhook from this same image.
COPY bin/linux-${TARGETARCH}/webhook /webhook
USER 65532:65532
ENTRYPOINT ["/manager"]
