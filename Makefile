# The one test command for the whole repository: make test
# (gofmt, go vet for every architecture view, the library's tests on every
# kernel variant, the arm64 tests under qemu-user, and the examples module).

GO ?= go
QEMU ?= qemu-aarch64

.PHONY: test fmt vet cross unit arm64 examples bench

test: fmt vet cross unit arm64 examples

fmt:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	GOARCH=arm64 $(GO) vet ./...
	GOARCH=386 $(GO) vet .
	$(GO) vet -tags purego ./...

# The library must build everywhere, with assembly or without.
cross:
	GOARCH=riscv64 $(GO) build ./...
	GOARCH=386 $(GO) build ./...
	GOARCH=s390x $(GO) build ./...
	GOOS=js GOARCH=wasm $(GO) build ./...

unit:
	$(GO) test ./...
	$(GO) test -tags purego ./...
	GODEBUG=cpu.avx2=off $(GO) test ./...

# Without qemu-user the arm64 tests are skipped with a notice, except in CI
# (CI=true), which insists on everything. The emulated suite takes about 8
# minutes, so it gets more than go test's default 10-minute timeout.
arm64:
	@if command -v $(QEMU) >/dev/null; then \
		echo "GOARCH=arm64 $(GO) test -timeout 30m -exec $(QEMU) ./..."; GOARCH=arm64 $(GO) test -timeout 30m -exec $(QEMU) ./...; \
	elif [ "$$CI" = true ]; then \
		echo "$(QEMU) not found: apt-get install -y qemu-user"; exit 1; \
	else \
		echo "SKIPPED: the arm64 tests need $(QEMU); enable them with: apt-get install -y qemu-user"; \
	fi

examples:
	@if [ -f examples/go.mod ]; then cd examples && $(GO) vet ./... && $(GO) test ./...; fi

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x .
