// Package systemtest runs the coze-eraser binary as separate processes
// against a real redis-server and the fake API, and kills, restarts and
// starves them: the crash, restart and shutdown scenarios that in-process
// tests cannot show. The test binary builds coze-eraser once, in TestMain.
//
// The scenarios that take minutes (a worker killed with SIGKILL waits out
// asynq's 30 s lease and its one-minute recoverer; Redis gone for 20 s) are
// behind the build tag "slow":
//
//	go test -tags slow -run . -v ./internal/systemtest/
package systemtest
