# The appliance: printsrv, filesrv and tsserv on one shared Go core.
# `make` lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X example.com/appliance/shared/daemon.Version=$(VERSION)
# The daemons and tools that exist so far, as bin/NAME from ./PATH.
CMDS := tsserv:./tsserv tsclnt:./tsserv/tsclnt printsrv:./printsrv filesrv:./filesrv
FUZZTIME ?= 20s
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: help build run test race lint fuzz bench clean

help: ## list the targets
	@awk -F':.*## ' '/^[a-z]+:.*## /{printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build every daemon and tool into bin/
	@mkdir -p bin
	@for c in $(CMDS); do \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/$${c%%:*} $${c#*:}; \
	done
	@echo "built: $$(ls bin | tr '\n' ' ')"

run: build ## start the appliance with its built-in defaults (state in ./var); Ctrl-C stops it
	@mkdir -p var/log
	@pids=(); \
	stop() { trap - INT TERM; echo; echo "stopping..."; kill -TERM "$${pids[@]}" 2>/dev/null || true; \
		wait "$${pids[@]}" 2>/dev/null || true; echo "stopped; logs in var/log/"; }; \
	trap 'stop; exit 0' INT TERM; \
	: "start NAME ARGS: run bin/NAME in its own session (so Ctrl-C reaches it once, as stop's SIGTERM),"; \
	: "log to the terminal and var/log/NAME.log, and wait until it logs ready or dies"; \
	start() { local log=var/log/$$1.log; : > $$log; \
		setsid bash -c 'exec "$$0" "$${@:2}" 2> >(tee -a "$$1" >&2)' bin/$$1 $$log "$${@:2}" & pids+=($$!); \
		for i in $$(seq 100); do grep -q 'msg=ready' $$log && return; kill -0 $$! 2>/dev/null || break; sleep 0.1; done; \
		echo "$$1 did not start; see above and $$log"; stop; exit 1; }; \
	start tsserv; start printsrv; start filesrv; \
	echo; \
	echo "The appliance is running (logs also in var/log/). Ctrl-C stops it."; \
	echo; \
	echo "  print server (printsrv): IPP on 127.0.0.1:8631, queues office and lab; jobs land in var/printsrv/tray/QUEUE/"; \
	echo "    lp -h 127.0.0.1:8631 -d office README.md            print a file (or: echo hi | lp -h 127.0.0.1:8631 -d lab)"; \
	echo "    lp -h 127.0.0.1:8631 -d office -n 2 -o sides=two-sided-long-edge README.md"; \
	echo "    lpstat -h 127.0.0.1:8631 -t                          queues and jobs (-p printers, -o jobs, -d default)"; \
	echo "    cancel -h 127.0.0.1:8631 office-1                    cancel job 1; cancel -h 127.0.0.1:8631 -a office cancels all"; \
	echo "    ipptool -tv ipp://127.0.0.1:8631/ipp/print/office get-printer-attributes.test"; \
	echo "    metrics: curl http://127.0.0.1:9631/metrics"; \
	echo; \
	echo "  file server (filesrv): NFSv3 on 127.0.0.1:12049 (portmapper 12111), export /export = var/export, read-write, loopback only"; \
	echo "    mount -t nfs -o vers=3,proto=tcp,port=12049,mountport=12049,nolock 127.0.0.1:/export /mnt"; \
	echo "    nfs-ls  'nfs://127.0.0.1/export?nfsport=12049&mountport=12049&version=3'"; \
	echo "    nfs-cp  README.md 'nfs://127.0.0.1/export/README.md?nfsport=12049&mountport=12049&version=3'"; \
	echo "    nfs-cat 'nfs://127.0.0.1/export/README.md?nfsport=12049&mountport=12049&version=3'"; \
	echo "    metrics: curl http://127.0.0.1:9123/metrics"; \
	echo; \
	echo "  timestamp service (tsserv): TCP and UDP on port 21567, every interface"; \
	echo "    bin/tsclnt                    interactive; an empty line quits"; \
	echo "    bin/tsclnt -m hello           one message (add -u for UDP, -6 for IPv6)"; \
	echo "    printf 'a\nb\n' | nc -q1 localhost 21567"; \
	echo "    metrics: curl http://127.0.0.1:9121/metrics"; \
	echo; \
	wait "$${pids[@]}"

test: ## go vet, then every test with the race detector (interop tests need nc, socat, python3)
	$(GO) vet ./...
	$(GO) test -race -timeout 15m ./...

race: test ## same as test

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>&1); if [ -n "$$out" ]; then echo "not gofmt-formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) -checks 'inherit,ST1000,ST1020,ST1021,ST1022' ./...

fuzz: ## run each fuzz target for FUZZTIME (default 20s)
	@for f in $$(git grep -l '^func Fuzz' -- '*_test.go'); do \
		dir=./$$(dirname $$f); \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "== $$dir $$name"; \
			$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$dir; \
		done; \
	done

bench: build ## measure each daemon against its baseline in the same run; writes docs/benchmarks.md
	$(GO) test -run='^$$' -bench=. -benchmem ./shared/... ./tsserv/...
	$(GO) run ./tsserv/tsbench -tsserv ./bin/tsserv -out docs/benchmarks.md
	$(GO) run ./printsrv/printbench -printsrv ./bin/printsrv -out docs/benchmarks.md
	$(GO) run ./filesrv/nfsbench -filesrv ./bin/filesrv -out docs/benchmarks.md

clean: ## remove bin/ and var/
	rm -rf bin var
