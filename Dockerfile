# The worker image: one static binary on an empty base, run as a non-root user.
#
# The build context holds only a prebuilt static binary, so the image builds
# on any Docker engine without pulling a base image or fetching modules:
#
#   CGO_ENABLED=0 go build -o worker ./cmd/worker && docker build -t chatworker .
#
# test/containers builds the same image from this file for the system tests.
FROM scratch
COPY worker /worker
# 65532 is the conventional "nonroot" uid/gid; scratch has no /etc/passwd,
# so the numeric form is the only one that works.
USER 65532:65532
# /metrics, /healthz, /readyz (--http-addr, default :8080).
EXPOSE 8080
ENTRYPOINT ["/worker"]
CMD ["run"]
