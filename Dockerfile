# syntax=docker/dockerfile:1
# Multi-stage build: a static coze-eraser binary on a distroless base that
# runs as a non-root user and carries CA certificates for the Coze API.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .git stays out of the build context: give the version and commit that
# `coze-eraser version` prints, e.g. --build-arg COMMIT=$(git rev-parse HEAD).
ARG VERSION=devel
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X main.buildVersion=${VERSION} -X main.buildCommit=${COMMIT}" \
    -o /out/coze-eraser ./cmd/coze-eraser

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/coze-eraser /usr/local/bin/coze-eraser
USER nonroot:nonroot
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/coze-eraser"]
CMD ["worker"]
