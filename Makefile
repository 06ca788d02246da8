# make test: what CI runs (.ci/run). It installs redis-server first when it
# is missing; the tests start their own on free loopback ports.
GO ?= go

.PHONY: test check demo build

test:
	@./scripts/ensure-redis-server
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# check: formatting and vet, without the tests.
check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

demo:
	$(GO) run ./cmd/coze-eraser demo

build:
	$(GO) build -o bin/coze-eraser ./cmd/coze-eraser
