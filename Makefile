# make test: what CI runs (.ci/run). It installs redis-server first when it
# is missing; the tests start their own on free loopback ports. promtool
# (the deploy tests check the alert rules and the dashboard with it) is taken
# into .bin/ from Debian's prometheus package when it is missing, and
# Debian's chromium (the web console's browser test drives it headless).
GO ?= go
# Use at least the toolchain go.mod names (go1.26.10: it fixes the standard
# library vulnerabilities govulncheck reports in earlier 1.26 releases); the
# go command fetches it from the module proxy when the local Go is older.
export GOTOOLCHAIN := auto

.PHONY: test check lint vulncheck demo build

test:
	@./scripts/ensure-redis-server
	@./scripts/ensure-promtool
	@./scripts/ensure-chromium
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# check: formatting, vet and the docs' relative links, without the tests.
check:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	@./scripts/check-doc-links README.md CHANGELOG.md docs/*.md

# lint: golangci-lint with .golangci.yml, the version scripts/ensure-golangci-lint
# pins (installed into .bin/ when missing).
lint:
	./scripts/ensure-golangci-lint run ./...

# vulncheck: govulncheck with a database built from the module proxy.
vulncheck:
	./scripts/govulncheck

demo:
	$(GO) run ./cmd/coze-eraser demo

build:
	$(GO) build -o bin/coze-eraser ./cmd/coze-eraser
