# The worker image: one static binary on an empty base, run as a non-root user.
#
# The build context holds a prebuilt static binary and an empty directory, so the image builds on any Docker engine without pulling a base
# image or fetching modules. From a clone, in one command:
#
#   go run ./cmd/image            # chatworker:<git describe> and chatworker:latest
#
# (by hand: CGO_ENABLED=0 GOOS=linux go build -trimpath -o worker ./cmd/worker
# && mkdir -p emptydir && docker build -t chatworker .). test/containers builds the
# system tests' image from this file and the same context.
FROM scratch
COPY worker /worker
# The embedded NATS server's storage for `worker run` without --nats-url (and
# `worker demo`): a volume owned by the runtime user, so it is writable with a
# read-only root filesystem. With NATS_URL set nothing is written there.
COPY --chown=65532:65532 emptydir /data
VOLUME /data
ENV WORKER_DATA_DIR=/data
# A writable /tmp for `worker demo`, which keeps its throwaway store there
# (in Kubernetes the root filesystem is read-only and demo is not run).
COPY --chown=65532:65532 emptydir /tmp
# 65532 is the conventional "nonroot" uid/gid; scratch has no /etc/passwd,
# so the numeric form is the only one that works.
USER 65532:65532
# /metrics, /healthz, /readyz (--http-addr, default :8080).
EXPOSE 8080
ENTRYPOINT ["/worker"]
CMD ["run"]
