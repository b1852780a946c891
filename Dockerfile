# syntax=docker/dockerfile:1

# Gatehouse container image: one static binary on distroless, running as a
# non-root user, with the SQLite database and its master secret in /data.
#
#   docker build -t gatehouse .
#   docker run -d -p 8080:8080 -v gatehouse-data:/data \
#     -e GATEHOUSE_ISSUER=https://auth.example.com gatehouse
#
# For PostgreSQL set GATEHOUSE_DB=postgres://… and GATEHOUSE_SECRET (README,
# "Deploying"). The build stage's `go build` line is the one CI runs.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/gatehouse ./cmd/gatehouse
# /data must exist, owned by the runtime user, before it becomes a volume:
# a new named volume copies this directory's owner and mode.
RUN mkdir -p /out/data && chmod 0700 /out/data

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV GATEHOUSE_ADDR=0.0.0.0:8080 \
    GATEHOUSE_DB=/data/gatehouse.db \
    GATEHOUSE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/gatehouse", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
